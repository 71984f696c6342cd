#!/usr/bin/env python3
"""Check deploy/Dockerfile against what can be checked without a Docker engine.

    dockerfile_check.py DOCKERFILE BUILD_PKGS.txt OUT_DIR ROOTFS_LIST

BUILD_PKGS.txt: `deploy/deps.sh --list build`. OUT_DIR: what `make install
DESTDIR=OUT_DIR PREFIX=/usr/local` made (the build stage's /out). Writes to
ROOTFS_LIST the files (one absolute path a line) of the runtime stage's
packages and everything they depend on, for the caller to copy into a chroot
and run the programs there. Prints what it checks; exits 1 on any problem:

- two stages, both FROM debian:12 or debian:12-slim; the first named;
- the build stage's apt-get install list is exactly the build packages of
  deploy/deps.sh, and it runs `make ... all` and
  `make install DESTDIR=/out PREFIX=/usr/local`;
- the runtime stage copies the programs from the build stage's
  /out/usr/local/bin/ to /usr/local/bin/, and OUT_DIR has all four there;
- its apt-get install list is exactly the Debian packages that hold the
  libraries the programs link directly (ELF NEEDED, resolved with ldd and
  mapped to packages
  with dpkg's file lists, as dpkg -S does), leaving out libc6, libgcc-s1 and libstdc++6, which
  every debian:12 image has;
- every library ldd resolves, directly or not, lies in a package of that
  list, the base three, or their Depends/Pre-Depends closure (dpkg-query);
- the last USER is 10001 (not root), created with useradd --uid 10001;
  WORKDIR and a VOLUME are /var/lib/softlabel, made for 10001;
- no ENTRYPOINT, and CMD (exec form) starts with one of the programs, so
  `docker run IMAGE softlabel-broker --help` runs the program.
"""
import json
import os
import re
import shlex
import subprocess
import sys

PROGRAMS = ["softlabel-broker", "softlabel-teacher", "softlabel-student", "softlabel"]
BASE = {"libc6", "libgcc-s1", "libstdc++6"}  # in every debian:12 image (apt needs them)
BASES = {"debian:12", "debian:12-slim"}

problems = []


def problem(msg):
    problems.append(msg)
    print("PROBLEM: " + msg)


def instructions(path):
    """(keyword, argument text) with continuations joined, comments dropped."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            s = line.rstrip("\n")
            if not cur and (s.strip() == "" or s.lstrip().startswith("#")):
                continue
            if s.lstrip().startswith("#"):  # a comment inside a continuation
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            kw, _, arg = cur.strip().partition(" ")
            out.append((kw.upper(), arg.strip()))
            cur = ""
    return out


def stages(instr):
    st = []
    for kw, arg in instr:
        if kw == "FROM":
            words = arg.split()
            alias = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            st.append({"base": words[0], "alias": alias, "instr": []})
        elif not st:
            problem(f"{kw} before the first FROM")
        else:
            st[-1]["instr"].append((kw, arg))
    return st


def apt_packages(stage):
    """Packages of every `apt-get install` in the stage's RUN lines."""
    pkgs = []
    for kw, arg in stage["instr"]:
        if kw != "RUN":
            continue
        for cmd in re.split(r"&&|;|\|\|", arg):
            words = shlex.split(cmd)
            words = [w for w in words if "=" not in w or w.startswith("-")]
            if words[:2] == ["apt-get", "install"]:
                pkgs += [w for w in words[2:] if not w.startswith("-")]
    return pkgs


def run(*cmd):
    return subprocess.run(cmd, capture_output=True, text=True)


# dpkg's database, read once: the file lists dpkg -S and dpkg -L read, and
# every package's status and dependencies (dpkg-query -W).
INFO = "/var/lib/dpkg/info"
OWNER, FILES = {}, {}
for name in os.listdir(INFO):
    if name.endswith(".list"):
        pkg = name[:-5].split(":")[0]
        with open(os.path.join(INFO, name), errors="replace") as f:
            paths = f.read().splitlines()
        FILES[pkg] = paths
        for path in paths:
            OWNER.setdefault(path, pkg)
STATUS, DEPENDS = {}, {}
for line in run("dpkg-query", "-W",
                "-f=${Package}\t${Status}\t${Depends}, ${Pre-Depends}\n").stdout.splitlines():
    pkg, status, deps = line.split("\t")
    STATUS[pkg] = status
    DEPENDS[pkg] = deps


def installed(pkg):
    return STATUS.get(pkg, "").endswith(" installed")


def dpkg_owner(path):
    """The package that holds path, as dpkg -S says (usrmerge: the files
    are listed under /lib or /usr/lib, whichever the package ships)."""
    cands = [path, os.path.realpath(path)]
    for p in list(cands):
        cands.append(p[4:] if p.startswith("/usr/") else "/usr" + p)
    for p in cands:
        if p in OWNER:
            return OWNER[p]
    return None


def ldd(binary):
    """{soname: resolved path} for every library ldd resolves."""
    r = run("ldd", binary)
    if r.returncode != 0:
        problem(f"ldd {binary}: {r.stderr.strip()}")
    libs = {}
    for line in r.stdout.splitlines():
        m = re.match(r"\s*(\S+) => (\S+) \(", line)
        if m:
            libs[m.group(1)] = m.group(2)
        elif "not found" in line:
            problem(f"{binary}: {line.strip()}")
    return libs


def needed(binary):
    r = run("objdump", "-p", binary)
    return re.findall(r"^\s*NEEDED\s+(\S+)", r.stdout, re.M)


def depends(pkg):
    """Installed packages pkg depends on (first installed alternative)."""
    if not installed(pkg):
        return None
    deps = []
    for clause in DEPENDS[pkg].split(","):
        for alt in clause.split("|"):
            name = re.sub(r"\(.*?\)", "", alt).strip().split(":")[0]
            if name and installed(name):
                deps.append(name)
                break
    return deps


def closure(roots):
    seen, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        d = depends(p)
        if d is None:
            problem(f"package {p} is not installed here: cannot follow its dependencies")
            continue
        seen.add(p)
        todo += d
    return seen


def main():
    dockerfile, build_list, out_dir, rootfs_list = sys.argv[1:5]
    st = stages(instructions(dockerfile))
    print(f"{dockerfile}: {len(st)} stages: " +
          ", ".join(f"{s['base']}{' AS ' + s['alias'] if s['alias'] else ''}" for s in st))
    if len(st) != 2:
        problem(f"expected 2 stages (build, runtime), found {len(st)}")
        return 1
    build, final = st
    for s in st:
        if s["base"] not in BASES:
            problem(f"stage FROM {s['base']}: not one of {sorted(BASES)}")
    if not build["alias"]:
        problem("the build stage has no name (FROM ... AS build)")

    # Build stage.
    with open(build_list) as f:
        want = sorted(f.read().split())
    got = sorted(apt_packages(build))
    print(f"build stage installs: {' '.join(got)}")
    if got != want:
        problem(f"build stage packages differ from deploy/deps.sh --list build: "
                f"missing {sorted(set(want) - set(got))}, extra {sorted(set(got) - set(want))}")
    runs = " ; ".join(a for k, a in build["instr"] if k == "RUN")
    if not re.search(r"\bmake\b[^;&]*\ball\b", runs):
        problem("the build stage does not run make all")
    if not re.search(r"\bmake install DESTDIR=/out PREFIX=/usr/local\b", runs):
        problem("the build stage does not run make install DESTDIR=/out PREFIX=/usr/local")

    # Runtime stage: programs.
    copies = [a for k, a in final["instr"] if k == "COPY"]
    want_copy = f"--from={build['alias']} /out/usr/local/bin/ /usr/local/bin/"
    if want_copy not in copies:
        problem(f"the runtime stage does not COPY {want_copy} (has {copies})")
    bindir = os.path.join(out_dir, "usr/local/bin")
    bins = []
    for p in PROGRAMS:
        b = os.path.join(bindir, p)
        if not os.access(b, os.X_OK):
            problem(f"make install DESTDIR=... made no {b}")
        else:
            bins.append(b)

    # Runtime stage: libraries.
    listed = apt_packages(final)
    print(f"runtime stage installs: {' '.join(listed)}")
    direct, all_libs = {}, {}
    for b in bins:
        libs = ldd(b)
        for soname, path in libs.items():
            all_libs.setdefault(path, set()).add(os.path.basename(b))
        for soname in needed(b):
            if soname not in libs:
                problem(f"{b}: NEEDED {soname} not resolved by ldd")
                continue
            pkg = dpkg_owner(libs[soname])
            if pkg is None:
                problem(f"{b}: {soname} ({libs[soname]}) belongs to no package")
                continue
            direct.setdefault(pkg, set()).add(f"{os.path.basename(b)}:{soname}")
    need = {p for p in direct if p not in BASE}
    for p in sorted(direct):
        mark = "base image" if p in BASE else ("listed" if p in listed else "NOT LISTED")
        print(f"  {p:24} {mark:10} for {', '.join(sorted(direct[p]))}")
    for p in sorted(need - set(listed)):
        problem(f"runtime stage lacks {p} (for {', '.join(sorted(direct[p]))})")
    for p in sorted(set(listed) - need):
        problem(f"runtime stage installs {p}, which no program links directly")
    have = closure(set(listed) | BASE)
    print(f"the listed and base packages with their dependencies: {len(have)} packages")
    for path, users in sorted(all_libs.items()):
        pkg = dpkg_owner(path)
        if pkg is None or pkg not in have:
            problem(f"{path} (for {', '.join(sorted(users))}) is in {pkg}, "
                    f"which the runtime stage does not bring")
    print(f"{len(all_libs)} libraries resolved by ldd, each in one of them")
    with open(rootfs_list, "w") as f:
        for p in sorted(have):
            for path in FILES.get(p, []):
                if (path.startswith(("/lib", "/usr/lib/", "/etc/")) and
                        (os.path.islink(path) or os.path.isfile(path))):
                    f.write(path + "\n")
        # update-alternatives links made by the packages' maintainer scripts
        # (libopenblas.so.0 -> /etc/alternatives/... -> openblas-pthread/):
        # the ldd paths that no package lists themselves.
        for path in sorted(all_libs):
            if path not in OWNER and os.path.islink(path):
                hop = path
                while os.path.islink(hop):
                    f.write(hop + "\n")
                    hop = os.path.join(os.path.dirname(hop), os.readlink(hop))

    # The user, the volume, the command.
    users = [a for k, a in final["instr"] if k == "USER"]
    user = users[-1] if users else "root"
    uid = user.split(":")[0]
    print(f"runtime USER {user}")
    if uid in ("0", "root") or uid != "10001":
        problem(f"the last USER is {user}, not 10001")
    runs = " ; ".join(a for k, a in final["instr"] if k == "RUN")
    if not re.search(r"useradd [^;&]*--uid 10001\b", runs):
        problem("no useradd --uid 10001 in the runtime stage")
    if not re.search(r"install -d -o 10001 -g 10001 [^;&]*/var/lib/softlabel\b", runs):
        problem("/var/lib/softlabel is not made for 10001")
    workdirs = [a for k, a in final["instr"] if k == "WORKDIR"]
    if not workdirs or workdirs[-1] != "/var/lib/softlabel":
        problem(f"WORKDIR is {workdirs[-1] if workdirs else None}, not /var/lib/softlabel")
    vols = [a for k, a in final["instr"] if k == "VOLUME"]
    if not any("/var/lib/softlabel" in v for v in vols):
        problem("no VOLUME /var/lib/softlabel")
    if any(k == "ENTRYPOINT" for k, _ in final["instr"]):
        problem("an ENTRYPOINT: `docker run IMAGE softlabel-broker ...` would not run the program")
    cmds = [a for k, a in final["instr"] if k == "CMD"]
    try:
        cmd = json.loads(cmds[-1]) if cmds else None
    except ValueError:
        cmd = None
    if not cmd or cmd[0] not in PROGRAMS:
        problem(f"CMD is not an exec-form command of one of the programs: {cmds}")
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
