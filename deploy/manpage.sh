#!/bin/sh
# Write the man page (roff, section 1) of one softlabel program, made from
# its own --help, so the page cannot drift from the option table: make
# runs this for each program it builds ($(BUILD)/man/NAME.1), and make
# install puts the pages in $(PREFIX)/share/man/man1.
#
#   deploy/manpage.sh BINARY NAME VERSION "one-line description" [SUBCOMMAND] >NAME.1
#
# With SUBCOMMAND the page is that of `BINARY SUBCOMMAND` (softlabel serve
# has a page of its own, softlabel-serve(1)), made from its --help.
#
# --help's parts become: the "usage:" lines SYNOPSIS, the text up to
# "options:" DESCRIPTION, each "  --option ARG  text" line an OPTIONS entry,
# the closing paragraphs (the environment) ENVIRONMENT; EXIT STATUS is the
# convention every softlabel program keeps (0, 1, 2).
set -eu
[ $# -eq 4 ] || [ $# -eq 5 ] ||
    { echo "usage: manpage.sh BINARY NAME VERSION DESCRIPTION [SUBCOMMAND]" >&2; exit 2; }
BIN=$1 NAME=$2 VERSION=$3 WHAT=$4 SUB=${5:-}
if [ -n "$SUB" ]; then
	HELP=$("$BIN" "$SUB" --help) || { echo "manpage.sh: $BIN $SUB --help failed" >&2; exit 1; }
else
	HELP=$("$BIN" --help) || { echo "manpage.sh: $BIN --help failed" >&2; exit 1; }
fi
printf '%s\n' "$HELP" | awk -v name="$NAME" -v version="$VERSION" -v what="$WHAT" '
# roff: a backslash is \e; a line starting with . or '"'"' is protected by \&;
# "-" in option names is \- (a real minus, searchable).
function esc(s) {
	gsub(/\\/, "\\e", s)
	if (s ~ /^[.'"'"']/) s = "\\&" s
	return s
}
function dash(s) { gsub(/-/, "\\-", s); return s }
BEGIN {
	upper = toupper(name)
	printf ".TH %s 1 \"\" \"softlabel %s\" \"softlabel manual\"\n", upper, version
	# Left-aligned, never stretched: the long words of --help (an --arch
	# example) cannot be justified, and troff would warn.
	printf ".ad l\n"
	printf ".SH NAME\n%s \\- %s\n", dash(name), esc(what)
	part = "usage"
}
part == "usage" && /^usage: / { sub(/^usage: /, ""); printf ".SH SYNOPSIS\n.nf\n%s\n", esc($0); next }
part == "usage" && /^       / { sub(/^ +/, ""); printf "%s\n", esc($0); next }
part == "usage" && /^ *$/ { printf ".fi\n.SH DESCRIPTION\n"; part = "desc"; next }
part == "desc" && /^options:$/ { printf ".SH OPTIONS\n"; part = "opts"; next }
part == "desc" && /^ *$/ { printf ".PP\n"; next }
part == "desc" { printf "%s\n", esc($0); next }
part == "opts" && /^  --/ {
	line = $0; sub(/^  /, "", line)
	# "--name ARG   text": the name and its argument, then two or more spaces.
	if (match(line, /  +/)) { head = substr(line, 1, RSTART - 1); text = substr(line, RSTART + RLENGTH) }
	else { head = line; text = "" }
	n = split(head, w, " ")
	# A long argument leaves one space before the text: option, argument,
	# and the rest is text.
	if (n > 2) {
		rest = w[3]
		for (i = 4; i <= n; i++) rest = rest " " w[i]
		text = text == "" ? rest : rest "  " text
		n = 2
	}
	printf ".TP\n\\fB%s\\fR", dash(esc(w[1]))
	if (n == 2) printf " \\fI%s\\fR", esc(w[2])
	printf "\n%s\n", esc(text)
	next
}
part == "opts" && /^ *$/ { part = "env"; printf ".SH ENVIRONMENT\n"; next }
part == "opts" { printf "%s\n", esc($0); next }
part == "env" && /^ *$/ { printf ".PP\n"; next }
part == "env" { printf "%s\n", esc($0); next }
END {
	if (part == "usage") printf ".fi\n"
	printf ".SH EXIT STATUS\n.TP\n0\nsuccess\n.TP\n1\na runtime failure (named in one line on stderr)\n.TP\n2\nbad usage: an unknown option, a value out of range, a bad file given (named in one line)\n"
	printf ".SH SEE ALSO\n"
	split("softlabel-broker softlabel-teacher softlabel-student softlabel", all, " ")
	sep = ""
	for (i = 1; i <= 4; i++) if (all[i] != name) { printf "%s\\fB%s\\fR(1)", sep, dash(all[i]); sep = ", " }
	printf "\n.PP\nThe README of the softlabel sources describes the cache format, the wire protocol and operations.\n"
}'
