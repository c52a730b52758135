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


TALK_FIRST = '''# Talks slowly, then pauses before its result is sent: a test restarts the master meanwhile.
DESCRIPTION="Print 30 numbered lines slowly, then wait a little"

src_test() {
	local i
	for i in $(seq 1 30); do
		echo "first says ${i}"
		sleep 0.05
	done
	einfo "first: last words"
	sleep 3
	result said 30
}
'''

TALK_SECOND = '''# Talks slowly for a few seconds: a test restarts the master while its log streams.
DESCRIPTION="Print 60 numbered lines slowly, after bob/talk-first"
DEPEND="bob/talk-first"

src_test() {
	local i
	for i in $(seq 1 60); do
		echo "second says ${i}"
		sleep 0.1
	done
	result said 60
}
'''

TINY = '''# As small as a job gets: one line of log, one result.
DESCRIPTION="One line, one result"

src_test() {
	einfo "tiny"
	result tiny yes
}
'''

JOBUILDS = {
    "bob/chain-top/chain-top-1.0.jobuild": CHAIN_TOP,
    "bob/chain-middle/chain-middle-1.0.jobuild": CHAIN_MIDDLE,
    "bob/revved/revved-1.0.jobuild": revved("one"),
    "bob/talk-first/talk-first-1.0.jobuild": TALK_FIRST,
    "bob/talk-second/talk-second-1.0.jobuild": TALK_SECOND,
    "bob/tiny/tiny-1.0.jobuild": TINY,
}
