#!/bin/bash
# jobuild.sh — the bridge between AutotuA (Python) and jobuilds (bash), after portage's ebuild.sh.
#
#   bash jobuild.sh depend   the metadata daemon: reads requests on stdin, sources each jobuild at
#                            global scope in a subshell and answers on fd $__AB_FD. The caller runs it
#                            in a sandbox (see autotua/sandbox.py).
#   bash jobuild.sh phases   runs one jobuild's phases (inside the chroot, on the slave).
#
# The protocol on fd $__AB_FD (default 3) is one KEY=value record per line, with '\' and newline in
# values written as '\\' and '\n'. Metadata keys are the jobuild's variables (DESCRIPTION=...);
# AUTOTUA_* keys are the bridge's own (phase start/end, result, attach, die, errors, end of request).
#
# Everything internal is named __ab_*, so a jobuild cannot collide with it by accident. It needs
# nothing but bash (>= 4.4) and, in phases, coreutils.

export LC_ALL=C
: "${__AB_FD:=3}"

__AB_PHASES=(pkg_setup src_unpack src_compile src_test)
__AB_METADATA=(DESCRIPTION SRC_URI PORTCONF_URI DEPEND SIDEPEND ARCH STAGE3 PARAMETERS)

# ---- the record protocol -----------------------------------------------------------------------
__ab_emit() { # KEY VALUE...
	local __ab_k=$1 __ab_v
	shift
	__ab_v="$*"
	__ab_v=${__ab_v//\\/\\\\}
	__ab_v=${__ab_v//$'\n'/\\n}
	printf '%s=%s\n' "$__ab_k" "$__ab_v" >&"${__AB_FD}"
}

# ---- messages, as portage prints them ----------------------------------------------------------
if [[ -n ${NOCOLOR} && ${NOCOLOR} != no && ${NOCOLOR} != false ]]; then
	__AB_GOOD='' __AB_WARN='' __AB_BAD='' __AB_NORMAL='' __AB_HILITE=''
else
	__AB_GOOD=$'\e[32;01m' __AB_WARN=$'\e[33;01m' __AB_BAD=$'\e[31;01m' __AB_NORMAL=$'\e[0m'
	__AB_HILITE=$'\e[36;01m'
fi

__ab_msg() { # COLOUR MESSAGE...
	local __ab_c=$1 __ab_line
	shift
	while IFS= read -r __ab_line; do
		printf ' %s*%s %s\n' "${__ab_c}" "${__AB_NORMAL}" "${__ab_line}" >&2
	done <<<"$*"
}
einfo() { __ab_msg "${__AB_GOOD}" "$@"; }
ewarn() { __ab_msg "${__AB_WARN}" "$@"; }
eerror() { __ab_msg "${__AB_BAD}" "$@"; }

# ---- where: a frame of the call stack as the tree names it ----------------------------------------
# "alice/foo/foo-1.0.jobuild, line 3": the file below the tree (the sandbox's /src in depend mode)
__ab_where() { # FRAME
	local __ab_f=${BASH_SOURCE[$1 + 1]} __ab_root=${__AB_SRC:-${__AB_TREE}}
	if [[ ${__ab_f} == "${BASH_SOURCE[0]}" ]]; then
		__ab_f=jobuild.sh  # the bridge itself (a helper that died)
	elif [[ -n ${__ab_root} ]]; then
		__ab_f=${__ab_f#"${__ab_root}/"}
	fi
	printf '%s, line %s' "${__ab_f}" "${BASH_LINENO[$1]}"
}

# ---- die: message, the failing phase, a bash call trace; then end the phase ---------------------
die() {
	local __ab_i __ab_phase=${__AB_PHASE:-global scope}
	eerror "ERROR: ${JOBUILD_USER:-?}/${P:-?} failed (${__ab_phase}):"
	eerror "  ${*:-(no error message)}"
	eerror ""
	eerror "Call stack:"
	for ((__ab_i = 1; __ab_i < ${#FUNCNAME[@]}; __ab_i++)); do
		[[ ${FUNCNAME[__ab_i]} == __ab_* || ${FUNCNAME[__ab_i - 1]} == __ab_* ]] && continue
		[[ ${BASH_SOURCE[__ab_i]} == "${BASH_SOURCE[0]}" ]] && continue  # the bridge's own lines
		eerror "  $(__ab_where "${__ab_i}"): called ${FUNCNAME[__ab_i - 1]}"
	done
	__ab_emit AUTOTUA_DIE "${__ab_phase} ${*:-(no error message)}"
	# From a nested subshell or pipeline, stop the phase itself, as portage does with its master pid.
	if [[ -n ${__ab_top} && ${BASHPID} != "${__ab_top}" ]]; then
		kill -s USR1 "${__ab_top}" 2>/dev/null
	fi
	exit 1
}

# ---- inherit: templates, with <tname>_<phase> kept callable -------------------------------------
INHERITED=""
inherit() {
	local __ab_t __ab_name __ab_p __ab_def
	for __ab_t in "$@"; do
		[[ ${__ab_t} =~ ^[a-z0-9][a-z0-9_.-]*/[A-Za-z0-9_][A-Za-z0-9_+-]*$ ]] \
			|| die "inherit: '${__ab_t}' is not <user>/<template>"
		[[ " ${INHERITED} " == *" ${__ab_t} "* ]] && continue
		__ab_name=${__ab_t#*/}
		# A template's phases are captured as <tname>_<phase>; the jobuild's own override them.
		for __ab_p in "${__AB_PHASES[@]}"; do unset -f "${__ab_p}"; done
		INHERITED="${INHERITED:+${INHERITED} }${__ab_t}"
		__ab_source_template "${__ab_t}" || die "inherit: sourcing template ${__ab_t} failed"
		# Metadata needs no <tname>_<phase> copies (and each costs a fork): only phases make them.
		[[ ${__AB_MODE} == depend ]] && continue
		for __ab_p in "${__AB_PHASES[@]}"; do
			declare -F "${__ab_p}" >/dev/null || continue
			__ab_def=$(declare -f "${__ab_p}")
			eval "${__ab_name}_${__ab_p} ${__ab_def#"${__ab_p} "}"
		done
	done
}

# ---- phase helpers ------------------------------------------------------------------------------
result() { # KEY VALUE
	[[ $# -ge 1 && $1 =~ ^[A-Za-z_][A-Za-z0-9_.-]*$ ]] || die "result: '$1' is not a valid key"
	local __ab_k=$1
	shift
	__ab_emit AUTOTUA_RESULT "${__ab_k} $*"
}

attach() { # FILE [LABEL]
	local __ab_f=$1 __ab_label=${2:-${1##*/}} __ab_dest
	[[ -f ${__ab_f} ]] || die "attach: ${__ab_f} is not a regular file"
	[[ -n ${__AB_OUTDIR} ]] || die "attach: no attachment directory (__AB_OUTDIR)"
	__ab_attach_n=$((${__ab_attach_n:-0} + 1))
	# Copied here, inside the chroot, so a symlink can only resolve within the chroot.
	__ab_dest="${__ab_attach_n}-${BASHPID}-${__ab_f##*/}"
	cp -L -- "${__ab_f}" "${__AB_OUTDIR}/${__ab_dest}" || die "attach: cannot copy ${__ab_f}"
	__ab_emit AUTOTUA_ATTACH "${__ab_dest} ${__ab_label}"
}

unpack() { # FILE...  (a bare name is taken from $DISTDIR), into the current directory
	local __ab_f __ab_src
	for __ab_f in "$@"; do
		if [[ ${__ab_f} == */* ]]; then __ab_src=${__ab_f}; else __ab_src=${DISTDIR}/${__ab_f}; fi
		[[ -f ${__ab_src} ]] || die "unpack: ${__ab_src} does not exist"
		einfo "Unpacking ${__ab_f} to ${PWD}"
		case ${__ab_f,,} in
			*.tar) tar xof "${__ab_src}" ;;
			*.tar.gz | *.tgz) tar xozf "${__ab_src}" ;;
			*.tar.bz2 | *.tbz2) tar xojf "${__ab_src}" ;;
			*.tar.xz | *.txz) tar xoJf "${__ab_src}" ;;
			*.tar.zst) tar xo --zstd -f "${__ab_src}" ;;
			*.gz) gzip -dc "${__ab_src}" >"${__ab_f##*/}" && mv "${__ab_f##*/}" "${__ab_f%.*}" ;;
			*.bz2) bzip2 -dc "${__ab_src}" >"${__ab_f%.*}" ;;
			*.xz) xz -dc "${__ab_src}" >"${__ab_f%.*}" ;;
			*.zip) unzip -qo "${__ab_src}" ;;
			*) die "unpack: don't know how to unpack ${__ab_f}" ;;
		esac || die "unpack: failed to unpack ${__ab_f}"
	done
}

# The default of each phase; `default` inside a phase calls it, as in portage.
__ab_default_pkg_setup() { :; }
__ab_default_src_unpack() {
	[[ -n ${A} ]] || return 0
	cd "${WORKDIR}" || die "cannot cd to WORKDIR"
	unpack ${A}
}
__ab_default_src_compile() { :; }
__ab_default_src_test() { :; }
default() { "__ab_default_${__AB_PHASE}"; }

# ---- depend mode: the metadata daemon ------------------------------------------------------------
__ab_depend_die() { # run when a command is looked up at global scope
	local __ab_i=2 __ab_at=""
	# the first frame in a jobuild or template: where the command is
	while ((__ab_i < ${#BASH_SOURCE[@]})); do
		if [[ ${BASH_SOURCE[__ab_i]} == "${__AB_SRC}/"* ]]; then
			__ab_at=" at $(__ab_where "${__ab_i}")"
			break
		fi
		((__ab_i++))
	done
	__ab_emit AUTOTUA_ERROR "forbidden-command '$1'${__ab_at} runs a command at global scope; commands may only run in phases"
	kill -s USR1 "${__ab_top}" 2>/dev/null
	exit 127
}

__ab_depend_one() { # CPV: runs in a subshell of the daemon; sources ${__AB_SRC}/<user>/<name>/<P>.jobuild
	local __ab_v __ab_p __ab_phases="" __ab_file
	unset __ab_nonce
	JOBUILD_USER=${1%%/*} P=${1#*/}
	PV=${P##*-} PN=${P%-*}
	__ab_file=${__AB_SRC}/${JOBUILD_USER}/${PN}/${P}.jobuild
	__ab_top=${BASHPID}
	trap 'exit 1' USR1
	command_not_found_handle() { __ab_depend_die "$@"; }
	__ab_source_template() {
		[[ -v __ab_tmpl_err[$1] ]] && {
			__ab_emit AUTOTUA_ERROR "template-unverified ${1}: inherit: template ${1} is not trusted: ${__ab_tmpl_err[$1]}"
			die "inherit: template $1 is not trusted"
		}
		[[ -v __ab_tmpl[$1] ]] || {
			__ab_emit AUTOTUA_ERROR "template-missing ${1}: inherit: there is no template ${1} in the tree"
			die "inherit: template $1 does not exist"
		}
		source "${__AB_SRC}/${1%%/*}/templates/${1#*/}.jtemplate"
	}
	# soft limit first (SIGXCPU: a clear "timeout"), then a hard one a second later (SIGKILL)
	ulimit -S -t "${__AB_LIMIT_CPU:-5}" && ulimit -H -t $((${__AB_LIMIT_CPU:-5} + 1))
	ulimit -v "${__AB_LIMIT_MEM_KB:-262144}" -f 0 -c 0
	[[ -n ${__AB_LIMIT_NPROC} ]] && ulimit -u "${__AB_LIMIT_NPROC}"
	unset __AB_LIMIT_CPU __AB_LIMIT_MEM_KB __AB_LIMIT_NPROC
	# the last command at global scope that failed, for the message when sourcing returns non-zero
	trap '[[ ${BASH_SOURCE[0]} == "${__AB_SRC}/"* ]] && __ab_failed=$(__ab_where 0)' ERR
	set -o errtrace
	source "${__ab_file}"  # not in a || list: that would keep the ERR trap from firing inside it
	if (($?)); then
		if [[ -n ${__ab_failed} ]]; then
			__ab_emit AUTOTUA_ERROR "source-failed ${__ab_failed}: a command at global scope failed, so sourcing the jobuild returned non-zero"
		else
			__ab_emit AUTOTUA_ERROR "source-failed ${__ab_file#"${__AB_SRC}/"}: sourcing it returned non-zero: its last command at global scope failed"
		fi
		exit 1
	fi
	set +o errtrace
	trap - ERR
	# the jobuild's shell options are its own business, not the bridge's (set -u would break the reading below)
	set +euo pipefail
	IFS=$' \t\n'
	if jobs %% >/dev/null 2>&1; then
		__ab_emit AUTOTUA_ERROR "background-process it starts background processes at global scope"
		exit 1
	fi
	for __ab_p in "${__AB_PHASES[@]}"; do
		declare -F "${__ab_p}" >/dev/null && __ab_phases+="${__ab_p} "
	done
	DEFINED_PHASES=${__ab_phases% }
	# all records in one write: one wake-up for the reader instead of one per variable
	local __ab_out="" __ab_val
	for __ab_v in "${__AB_METADATA[@]}" INHERITED DEFINED_PHASES; do
		__ab_val=${!__ab_v}
		__ab_val=${__ab_val//\\/\\\\}
		__ab_out+="${__ab_v}=${__ab_val//$'\n'/\\n}"$'\n'
	done
	printf '%s' "${__ab_out}" >&"${__AB_FD}"
}

__ab_match() { # "<pattern>\n<value>": runs in a subshell of the daemon; 0 a match, 1 none, 2 a bad pattern
	local __ab_re=${1%%$'\n'*} __ab_val=${1#*$'\n'}
	ulimit -S -t "${__AB_LIMIT_CPU:-5}" && ulimit -H -t $((${__AB_LIMIT_CPU:-5} + 1))
	ulimit -v "${__AB_LIMIT_MEM_KB:-262144}" -f 0 -c 0
	# the whole value: POSIX's leftmost-longest match covers all of it when any match does (no anchors
	# are added, which would renumber the pattern's groups)
	[[ ${__ab_val} =~ ${__ab_re} ]]
	case $? in
		0) [[ ${BASH_REMATCH[0]} == "${__ab_val}" ]] ;;
		1) return 1 ;;
		*) return 2 ;;
	esac
}

__ab_depend_daemon() {
	declare -A __ab_tmpl=() __ab_tmpl_err=()
	local __ab_cmd __ab_nonce __ab_name __ab_len __ab_body __ab_rc
	PATH=/nonexistent
	while read -r __ab_cmd __ab_nonce __ab_name __ab_len; do
		if [[ -n ${__ab_len} ]]; then
			__ab_body=""
			((__ab_len == 0)) || read -r -N "${__ab_len}" __ab_body
		fi
		case ${__ab_cmd} in
			template) __ab_tmpl[${__ab_name}]=1; unset "__ab_tmpl_err[${__ab_name}]" ;;
			template-error) __ab_tmpl_err[${__ab_name}]=${__ab_body}; unset "__ab_tmpl[${__ab_name}]" ;;
			forget) __ab_tmpl=() __ab_tmpl_err=() ;;
			jobuild)
				(__ab_depend_one "${__ab_name}") </dev/null
				__ab_rc=$?
				# In our own PID namespace, nothing the jobuild started may outlive its request.
				[[ $$ == 1 ]] && kill -s KILL -1 2>/dev/null
				printf '\x1e%s\n' "${__ab_nonce}" >&2
				__ab_emit AUTOTUA_END "${__ab_nonce} ${__ab_rc}"
				;;
			match)
				(__ab_match "${__ab_body}") </dev/null
				__ab_rc=$?
				printf '\x1e%s\n' "${__ab_nonce}" >&2
				__ab_emit AUTOTUA_END "${__ab_nonce} ${__ab_rc}"
				;;
			ping) __ab_emit AUTOTUA_END "${__ab_nonce} 0" ;;
			quit) exit 0 ;;
			*) printf 'jobuild.sh: unknown request %q\n' "${__ab_cmd}" >&2; exit 2 ;;
		esac
	done
}

# ---- phases mode: one jobuild, inside the chroot ------------------------------------------------
# Each phase begins with a header in the log, as portage's do: ">>> Running src_test" (">>>" green,
# the phase cyan unless NOCOLOR). The master finds the phases in a log by these lines (the log page
# jumps to the failing one); a jobuild printing such a line only confuses its own log.
__ab_header() { # PHASE
	printf '%s>>>%s Running %s%s%s\n' "${__AB_GOOD}" "${__AB_NORMAL}" "${__AB_HILITE}" "$1" "${__AB_NORMAL}"
}

__ab_run_phase() { # PHASE: runs in a subshell
	__AB_PHASE=$1
	__ab_top=${BASHPID}
	trap 'exit 1' USR1
	local __ab_dir=${WORKDIR}
	[[ $1 == src_compile || $1 == src_test ]] && [[ -d ${S} ]] && __ab_dir=${S}
	cd "${__ab_dir}" || die "cannot cd to ${__ab_dir}"
	if declare -F "$1" >/dev/null; then "$1"; else "__ab_default_$1"; fi
}

__ab_phases_main() {
	local __ab_p __ab_rc __ab_v
	{ true >&"${__AB_FD}"; } 2>/dev/null || { echo "jobuild.sh: fd ${__AB_FD} is not open" >&2; exit 2; }
	for __ab_v in P PN PV JOBUILD_USER FILESDIR DISTDIR WORKDIR T __AB_JOBUILD __AB_TREE; do
		[[ -n ${!__ab_v} ]] || { echo "jobuild.sh: ${__ab_v} is not set" >&2; exit 2; }
	done
	: "${S:=${WORKDIR}/${P}}"
	export P PN PV JOBUILD_USER FILESDIR DISTDIR WORKDIR T A S
	__ab_source_template() {
		local __ab_f="${__AB_TREE}/${1%%/*}/templates/${1#*/}.jtemplate"
		[[ -f ${__ab_f} ]] || die "inherit: template $1 does not exist"
		source "${__ab_f}"
	}
	__ab_top=${BASHPID}
	trap 'exit 1' USR1
	source "${__AB_JOBUILD}" || die "sourcing ${__AB_JOBUILD##*/} failed"
	trap - USR1
	for __ab_p in ${__AB_RUN_PHASES:-${__AB_PHASES[*]}}; do
		__ab_emit AUTOTUA_PHASE_START "${__ab_p} ${EPOCHREALTIME}"
		__ab_header "${__ab_p}"
		(__ab_run_phase "${__ab_p}")
		__ab_rc=$?
		__ab_emit AUTOTUA_PHASE_END "${__ab_p} ${__ab_rc} ${EPOCHREALTIME}"
		if ((__ab_rc != 0)); then
			eerror "${__ab_p} failed (exit status ${__ab_rc})"
			exit "${__ab_rc}"
		fi
	done
	exit 0
}

case $1 in
	depend) __AB_MODE=depend __ab_depend_daemon ;;
	phases) __ab_phases_main ;;
	*) echo "usage: jobuild.sh depend|phases" >&2; exit 2 ;;
esac
