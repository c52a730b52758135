#!/bin/bash
# Prints the jobuild variables the bridge must set, and fails if one is missing.
for var in P PN PV JOBUILD_USER FILESDIR DISTDIR WORKDIR T; do
	[[ -n ${!var} ]] || { echo "MISSING ${var}" >&2; exit 1; }
	echo "${var}=${!var}"
done
