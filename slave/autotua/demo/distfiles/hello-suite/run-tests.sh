#!/bin/bash
# The hello test suite: small checks of the userland, one PASS or FAIL line each.
check() { # NAME COMMAND...
	local name=$1
	shift
	if "$@"; then echo "PASS ${name}"; else echo "FAIL ${name}"; fi
}
greeting() { [[ $(printf 'hello, %s' world) == "hello, world" ]]; }
sorting() { [[ $(printf '3\n1\n2\n' | sort -n | tr '\n' ' ') == "1 2 3 " ]]; }
digest() { [[ $(printf hello | md5sum) == 5d41402abc4b2a76b9719d911017c592* ]]; }
files() { local d; d=$(mktemp -d) && echo data >"$d/f" && [[ $(<"$d/f") == data ]] && rm -r "$d"; }
arithmetic() { (( 6 * 7 == 42 )); }
check greeting greeting
check sorting sorting
check digest digest
check files files
check arithmetic arithmetic
