"""The jobuilds the end-to-end tests add to the sample tree (signed by their owners at run time).

The stage3s the tests publish carry ``/etc/autotua-stage3`` holding their flavour, so a jobuild can
say on which flavour (and therefore on which of the tests' slaves) it ran.
"""

CHAIN_TOP = '''# An openrc job that needs bob/chain-middle (a systemd jobuild) to have passed somewhere first.
DESCRIPTION="Top of a SIDEPEND chain across stage3 flavours"
DEPEND="alice/toolchain-sanity"
SIDEPEND="bob/chain-middle"

src_test() {
	result flavour "$(</etc/autotua-stage3)"
	einfo "chain-top ran on $(</etc/autotua-stage3)"
}
'''

CHAIN_MIDDLE = '''# Runs on a systemd stage3, and needs the hello suite (< 2) to have passed somewhere first.
DESCRIPTION="Middle of a SIDEPEND chain across stage3 flavours"
STAGE3="systemd"
SIDEPEND="<alice/hello-suite-2"

src_test() {
	result flavour "$(</etc/autotua-stage3)"
	einfo "chain-middle ran on $(</etc/autotua-stage3)"
}
'''


def revved(word: str) -> str:
    """bob/revved-1.0 as one revision of the tree has it: it says which revision it is."""
    return f'''# Changed from one revision of the tree to the next, under the same name and version.
DESCRIPTION="Say which revision of me runs: {word}"

src_test() {{
	einfo "this is revision {word}"
	result revision {word}
}}
'''


def _wait_for_the_master_to_go(port: int) -> str:
    """A bash function: return once nothing listens on the master's port any more (bash's /dev/tcp;
    the slave runs these with network = "host"), or die after two minutes."""
    return f'''master_gone() {{
	local n
	for (( n = 0; n < 600; n++ )); do
		(exec 3<>/dev/tcp/127.0.0.1/{port}) 2>/dev/null || return 0
		sleep 0.2
	done
	die "the master on port {port} never went away"
}}
'''


def talk_first(port: int) -> str:
    """bob/talk-first-1.0: talks, then ends only once the master on ``port`` is gone, so its result
    meets a dead master."""
    return f'''# Talks, then ends once the master is gone: its result is sent while nothing answers.
DESCRIPTION="Print 30 numbered lines, then end once the master on port {port} is down"

{_wait_for_the_master_to_go(port)}
src_test() {{
	local i
	for i in $(seq 1 30); do
		echo "first says ${{i}}"
	done
	einfo "first: last words"
	master_gone
	result said 30
}}
'''


def talk_second(port: int) -> str:
    """bob/talk-second-1.0 (DEPEND bob/talk-first): talks, waits for the master on ``port`` to go,
    then talks on for a few seconds, so its log chunks meet a dead master."""
    return f'''# Talks, waits for the master to go, and talks on while it is away (and back).
DESCRIPTION="Print 40 numbered lines, the last 30 slowly while the master on port {port} is down"
DEPEND="bob/talk-first"

{_wait_for_the_master_to_go(port)}
src_test() {{
	local i
	for i in $(seq 1 10); do
		echo "second says ${{i}}"
	done
	master_gone
	for i in $(seq 11 40); do
		echo "second says ${{i}}"
		sleep 0.1
	done
	result said 40
}}
'''


TINY = '''# As small as a job gets: one line of log, one result.
DESCRIPTION="One line, one result"

src_test() {
	einfo "tiny"
	result tiny yes
}
'''

PARAMS_ECHO = '''# Its parameters back as results and a file, and a check that nothing in them ran.
DESCRIPTION="Echo the job's values: they are data, never code"
PARAMETERS="note:/.*/ mode:/fast|slow/=fast"

src_test() {
	[[ -e /tmp/pwned ]] && die "a value ran as code"
	printf '%s' "${PARAM_NOTE}" >"${T}/note"
	attach "${T}/note" "the note, byte for byte"
	result mode "${PARAM_MODE}"
	result note.length "${#PARAM_NOTE}"
}
'''

JOBUILDS = {
    "alice/params-echo/params-echo-1.0.jobuild": PARAMS_ECHO,
    "bob/chain-top/chain-top-1.0.jobuild": CHAIN_TOP,
    "bob/chain-middle/chain-middle-1.0.jobuild": CHAIN_MIDDLE,
    "bob/revved/revved-1.0.jobuild": revved("one"),
    "bob/tiny/tiny-1.0.jobuild": TINY,
}
