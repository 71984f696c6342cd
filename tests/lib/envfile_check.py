#!/usr/bin/env python3
"""Check an example env file against a program's --help.

    envfile_check.py PREFIX HELP.txt FILE.env

PREFIX is the variable prefix (SOFTLABEL_BROKER); HELP.txt is the output of
`PROGRAM --help`. Checks, printing one line per problem and exiting 1 on any:

- every line is blank, a comment starting with '#', or VAR=value with a
  value that needs no shell quoting and means the same to systemd's
  EnvironmentFile=, `docker --env-file`, a Kubernetes ConfigMap and
  `set -a; . FILE` (no quotes, spaces, '$', backslashes, `export`);
- the variables are exactly the options of --help but --help and --version,
  each named PREFIX_<OPTION> (upper case, '-' as '_'), each once;
- each variable's block (the comment lines above it, after a blank line)
  starts with the option's --help line, spacing aside;
- the value is the --help default: the trailing "(default X)" that
  sl_opt_help prints (X one word: the option table's default text), or 0
  for a flag (an option without a metavar: off unless given);
- an option with no default has a second comment line saying what the
  value is for.
"""
import re
import sys

SAFE_VALUE = re.compile(r"^[A-Za-z0-9_./:,@%+=*\-]*$")
ASSIGN = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")
DEFAULT = re.compile(r"\(default (\S+)\)$")


def norm(s):
    return " ".join(s.split())


def parse_help(text):
    """{option: (help line, default or None, is_flag)} in --help order."""
    opts = {}
    for line in text.splitlines():
        if not line.startswith("  --"):
            continue
        words = line.split()
        name = words[0][2:]
        if name in ("help", "version"):
            continue
        # sl_opt_help pads "--name METAVAR" to 28 columns: a flag has no
        # metavar, so its name is followed by the padding, not one space.
        rest = line[len("  --" + name):]
        is_flag = rest.startswith("  ")
        m = DEFAULT.search(line.rstrip())
        default = m.group(1) if m else ("0" if is_flag else None)
        opts[name] = (norm(line), default, is_flag)
    return opts


def var_name(prefix, opt):
    return prefix + "_" + opt.upper().replace("-", "_")


def main():
    prefix, help_path, env_path = sys.argv[1:4]
    with open(help_path) as f:
        opts = parse_help(f.read())
    with open(env_path) as f:
        lines = f.read().splitlines()
    problems = []
    seen = {}
    block = []  # comment lines since the last blank line
    for no, line in enumerate(lines, 1):
        if line.strip() == "":
            block = []
            continue
        if line.startswith("#"):
            block.append(line[1:].strip())
            continue
        m = ASSIGN.match(line)
        if not m:
            problems.append(f"{env_path}:{no}: not a comment nor VAR=value: {line!r}")
            continue
        var, value = m.groups()
        if not SAFE_VALUE.match(value):
            problems.append(f"{env_path}:{no}: {var}: value needs quoting "
                            f"or means something to a shell: {value!r}")
        if var in seen:
            problems.append(f"{env_path}:{no}: {var} repeats line {seen[var][0]}")
        seen[var] = (no, value, list(block))
        block = []
    by_var = {var_name(prefix, o): o for o in opts}
    for var in seen:
        if var not in by_var:
            problems.append(f"{env_path}:{seen[var][0]}: {var} is no option "
                            f"of --help")
    for var, opt in by_var.items():
        help_line, default, is_flag = opts[opt]
        if var not in seen:
            problems.append(f"{env_path}: --{opt} ({var}) is missing")
            continue
        no, value, block = seen[var]
        if not block or norm(block[0]) != help_line:
            problems.append(f"{env_path}:{no}: {var}: the comment above is "
                            f"not the --help line {help_line!r} "
                            f"(found {block[0] if block else None!r})")
        if default is not None:
            if value != default:
                problems.append(f"{env_path}:{no}: {var}={value}: "
                                f"--help says the default is {default}")
        elif len(block) < 2:
            problems.append(f"{env_path}:{no}: {var} has no default in "
                            f"--help: say in a comment what the value is for")
    for p in problems:
        print(p)
    n_default = sum(1 for o in opts.values() if o[1] is not None)
    print(f"{env_path}: {len(seen)} variables for {len(opts)} options "
          f"({n_default} with a default), {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
