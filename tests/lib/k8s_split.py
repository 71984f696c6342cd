"""Read deploy/kubernetes/split/ (a job split by rows over broker pods with
a serve sidecar each) for tests/integration/deploy_kubernetes.sh.

  k8s_split.py check DIR BIN
      parse every manifest and check how the pieces fit, the way
      k8s_manifests.py checks deploy/kubernetes/ (one line per check, exit
      1 at the first that fails): the kustomization lists every file; one
      StatefulSet with as many replicas as SOFTLABEL_SPLIT_ROWS has ranges
      (contiguous from 0, on shard boundaries), a broker container whose
      command takes its range from the pod's ordinal and a serve sidecar
      on the same cache volume; one worker Deployment per ordinal,
      connected to that pod's name on the headless Service; Service ports
      = the broker's, status and serve binds; every SOFTLABEL_* variable an
      option in its program's --help; every path on a mounted volume,
      Secret items as make-keys.sh writes them (with a students pair), the
      sidecar admitting students only; probes, non-root, requests.
  k8s_split.py pod DIR N broker|serve|worker OUTDIR ROOT BIND STATUS SERVE
      the container of ordinal N (worker: the Deployment of N) as
      OUTDIR/command.sh (its argv and exact environment, env -i, POD_NAME
      softlabel-split-broker-N) and OUTDIR/secret ("KEY FILE" lines),
      remapped to this machine: paths under a mount to ROOT/pvc/CLAIM
      (the cache: ROOT/pvc/cache-STS-N) or ROOT/N/VOLUME (Secrets), and the
      pod's endpoints (0.0.0.0, 127.0.0.1 or its own name, ports 5555,
      5556, 5575 of the manifests) to 127.0.0.1:BIND, :STATUS, :SERVE.

Needs PyYAML (Debian: python3-yaml).
"""
import os
import re
import shlex
import sys

from k8s_manifests import (Fail, need, load, one, port_of, options,
                           probe_cmd, secret_files, config_env, mounts)

PREFIX = {"softlabel-broker": "SOFTLABEL_BROKER_",
          "softlabel-teacher": "SOFTLABEL_TEACHER_",
          "serve": "SOFTLABEL_SERVE_"}
KEYS = {"broker.key", "broker.pub", "probe.key", "probe.pub", "workers.key",
        "workers.pub", "students.key", "students.pub"}


def containers(wl):
    return {c["name"]: c for c in wl["spec"]["template"]["spec"]["containers"]}


def env_of(objs, wl, c, pod_name):
    return config_env(objs, wl, c, pod_name)


def mounts_of(wl, c):
    return mounts(wl, c)


def ranges(cm, shard_rows):
    rs = cm["data"]["SOFTLABEL_SPLIT_ROWS"].split(",")
    nxt = 0
    for i, r in enumerate(rs):
        a, _, b = r.partition(":")
        need(a.isdigit() and int(a) == nxt,
             f"SOFTLABEL_SPLIT_ROWS: range {r} does not start at {nxt}")
        need(int(a) % shard_rows == 0, f"range {r}: {a} is not on a "
             f"{shard_rows}-row shard boundary")
        if b == "":
            need(i == len(rs) - 1, f"range {r}: only the last may be open")
            nxt = None
        else:
            need(b.isdigit() and int(b) > int(a) and int(b) % shard_rows == 0,
                 f"range {r}: {b} is not a shard boundary above {a}")
            nxt = int(b)
    return rs


def check(d, bindir):
    files, objs = load(d)
    print(f"parsed {len(files)} files: "
          + ", ".join(f"{k} x{len(v)}" for k, v in sorted(objs.items())))
    kz = one(objs, "Kustomization")
    need(set(kz.get("resources", [])) == set(files) - {"kustomization.yaml"},
         f"kustomization.yaml lists {sorted(kz.get('resources', []))}, the "
         f"directory holds {sorted(set(files) - {'kustomization.yaml'})}")
    need("namespace" not in kz, "kustomization.yaml sets a namespace")
    print("kustomization.yaml lists every manifest")

    cm = one(objs, "ConfigMap")
    sts = one(objs, "StatefulSet")
    svc = one(objs, "Service")
    one(objs, "PersistentVolumeClaim")
    deps = [x for _, x in objs.get("Deployment", [])]
    sname, vname = sts["metadata"]["name"], svc["metadata"]["name"]
    cs = containers(sts)
    need(set(cs) == {"broker", "serve"}, f"the StatefulSet's containers are "
         f"{sorted(cs)}, want broker and serve")
    benv = env_of(objs, sts, cs["broker"], sname + "-0")
    rs = ranges(cm, int(benv["SOFTLABEL_BROKER_SHARD_ROWS"]))
    n = sts["spec"].get("replicas")
    need(n == len(rs) and n >= 2, f"{n} broker replicas for {len(rs)} ranges")
    need(len(deps) == n, f"{len(deps)} worker Deployments for {n} brokers")
    bcmd = " ".join(cs["broker"]["command"])
    need("softlabel-broker --rows" in bcmd and "${POD_NAME##*-}" in bcmd and
         "SOFTLABEL_SPLIT_ROWS" in bcmd,
         "the broker's command does not take --rows from the pod's ordinal")
    scmd = " ".join(cs["serve"]["command"])
    need('softlabel serve "$SOFTLABEL_BROKER_STORE"' in scmd,
         "the sidecar does not run softlabel serve on the broker's store")
    print(f"StatefulSet {sname}: {n} replicas for ranges {', '.join(rs)}; "
          "broker --rows from the ordinal, serve sidecar on its store")

    opts = {p: options(os.path.join(bindir, p)) for p in
            ("softlabel-broker", "softlabel-teacher")}
    opts["serve"] = set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", __import__(
        "subprocess").run([os.path.join(bindir, "softlabel"), "serve", "--help"],
        capture_output=True, text=True).stdout, re.M))
    seen = set()
    for var in cm["data"]:
        if var == "SOFTLABEL_SPLIT_ROWS":
            continue
        prog = [p for p, pre in PREFIX.items() if var.startswith(pre)]
        need(prog, f"{var}: not a SOFTLABEL_BROKER/TEACHER/SERVE_* variable")
        opt = var[len(PREFIX[prog[0]]):].lower().replace("_", "-")
        need(opt in opts[prog[0]] and opt not in ("help", "version"),
             f"{var}: {prog[0]} has no option --{opt}")
        seen.add(var)
    print(f"{len(seen)} SOFTLABEL_* variables, each an option in its program's --help")

    need(svc["spec"].get("clusterIP") == "None", "the Service is not headless "
         "(workers and students need each broker pod's own name)")
    need(sts["spec"].get("serviceName") == vname, "serviceName is not the Service")
    labels = sts["spec"]["template"]["metadata"]["labels"]
    need(all(labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
         "the Service's selector does not match the broker pods")
    _, bport = port_of(benv["SOFTLABEL_BROKER_BIND"])
    _, sport = port_of(benv["SOFTLABEL_BROKER_STATUS_BIND"])
    senv = env_of(objs, sts, cs["serve"], sname + "-0")
    h, vport = port_of(senv["SOFTLABEL_SERVE_BIND"])
    need(h == "0.0.0.0", "the sidecar must bind 0.0.0.0 (students on other pods)")
    cports = {p["name"]: p["containerPort"] for c in cs.values() for p in c.get("ports", [])}
    sports = {p["port"]: cports.get(p.get("targetPort", p["port"]), p.get("targetPort"))
              for p in svc["spec"]["ports"]}
    need(sports == {bport: bport, sport: sport, vport: vport},
         f"Service ports {sports} are not the binds :{bport}, :{sport}, :{vport}")
    conns = sorted(env_of(objs, dp, containers(dp)["worker"], "w")
                   ["SOFTLABEL_TEACHER_CONNECT"] for dp in deps)
    want = sorted(f"tcp://{sname}-{i}.{vname}:{bport}" for i in range(n))
    need(conns == want, f"workers connect to {conns}, want one each of {want}")
    print(f"headless Service {vname} ports {bport}, {sport}, {vport}; one worker "
          "Deployment per broker pod, connected to its name")

    for cname in ("broker", "serve"):
        ms = mounts_of(sts, cs[cname])
        store = benv["SOFTLABEL_BROKER_STORE"]
        m = [mp for mp in ms if store.startswith(mp + "/")]
        need(m and m[0] == "/var/lib/softlabel" and "claimTemplate" in ms[m[0]],
             f"{cname}: the store {store} is not on the cache volumeClaimTemplate")
        need(not [x for x in cs[cname]["volumeMounts"] if x["mountPath"] == m[0]
                  and x.get("readOnly")], f"{cname}: the cache is mounted "
             "read-only (LMDB readers write the lock file)")
    print("broker and serve share the cache volumeClaimTemplate at /var/lib/softlabel")

    work = [(sts, cs["broker"], "softlabel-broker"), (sts, cs["serve"], "serve")]
    work += [(dp, containers(dp)["worker"], "softlabel-teacher") for dp in deps]
    for wl, c, prog in work:
        ms = mounts_of(wl, c)
        env = env_of(objs, wl, c, "p")
        vals = [v for k, v in env.items() if k.startswith(PREFIX[prog]) and v.startswith("/")]
        if c["name"] == "broker":
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                vals += [a for a in probe_cmd(c, kind) if a.startswith("/")]
        for v in vals:
            m = [mp for mp in ms if v == mp or v.startswith(mp + "/")]
            need(m, f"{c['name']}: {v} is on no mounted volume")
            vol = ms[m[0]]
            if "secret" in vol:
                files = secret_files(vol)
                rel = v[len(m[0]) + 1:]
                need(rel in files or any(f.startswith(rel + "/") for f in files),
                     f"{c['name']}: {v} is not a file of the Secret volume")
                if rel.endswith(".key"):
                    need(rel[:-4] + ".pub" in files, f"{c['name']}: {v} without its .pub")
        for vol in ms.values():
            if "secret" in vol:
                need(vol["secret"].get("defaultMode") == 0o440,
                     f"{c['name']}: Secret volume mode is not 0440")
                need(set(secret_files(vol).values()) <= KEYS,
                     f"{c['name']}: Secret keys not written by make-keys.sh workers students")
    kvol = secret_files(mounts_of(sts, cs["serve"])["/keys"])
    allow = senv["SOFTLABEL_SERVE_ALLOW_KEYS"][len("/keys/"):]
    need({k for p, k in kvol.items() if p.startswith(allow + "/")} == {"students.pub"},
         "the sidecar's allow-list is not the students key alone")
    allow = benv["SOFTLABEL_BROKER_ALLOW_KEYS"][len("/keys/"):]
    need({k for p, k in kvol.items() if p.startswith(allow + "/")} == {"probe.pub", "workers.pub"},
         "the brokers' allow-list is not probe + workers")
    print("every path on a mounted volume; Secret items match (0440, pairs; "
          "brokers admit probe + workers, the sidecars students)")

    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        cmd = probe_cmd(cs["broker"], kind)
        need(cmd[:2] == ["softlabel", "status"] and port_of(cmd[2]) == ("127.0.0.1", sport),
             f"broker {kind}: not softlabel status on :{sport}")
    for wl in [sts] + deps:
        ps = wl["spec"]["template"]["spec"]
        sc = ps.get("securityContext", {})
        need(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001 and
             sc.get("fsGroup") == 10001, f"{wl['metadata']['name']}: not non-root 10001")
        need(ps.get("enableServiceLinks") is False,
             f"{wl['metadata']['name']}: enableServiceLinks must be false")
        for c in ps["containers"]:
            need(c.get("securityContext", {}).get("allowPrivilegeEscalation") is False,
                 f"{c['name']}: allowPrivilegeEscalation must be false")
            req = c.get("resources", {}).get("requests", {})
            need("cpu" in req and "memory" in req, f"{c['name']}: no requests")
    print("probes: softlabel status on the status port; non-root, no service "
          "links, no privilege escalation, requests set")


def pod(d, n, which, outdir, root, bind, status, serve):
    _, objs = load(d)
    sts = one(objs, "StatefulSet")
    svc = one(objs, "Service")["metadata"]["name"]
    sname = sts["metadata"]["name"]
    if which == "worker":
        wl = [x for _, x in objs["Deployment"]
              if x["metadata"]["name"].endswith(f"-{n}")][0]
        c = containers(wl)["worker"]
        pod_name = wl["metadata"]["name"] + "-test-pod"
    else:
        wl, c = sts, containers(sts)[which]
        pod_name = f"{sname}-{n}"
    env = env_of(objs, wl, c, pod_name)
    ms = mounts_of(wl, c)
    where = {}
    for mp, vol in ms.items():
        if "persistentVolumeClaim" in vol:
            where[mp] = os.path.join(root, "pvc", vol["persistentVolumeClaim"]["claimName"])
        elif "claimTemplate" in vol:
            where[mp] = os.path.join(root, "pvc", f"{vol['name']}-{sname}-{n}")
        else:
            where[mp] = os.path.join(root, str(n), vol["name"])
    ports = {5555: bind, 5556: status, 5575: serve}

    def remap(v):
        m = re.fullmatch(r"tcp://([^:/]+):(\d+)", v)
        if m and m.group(1) in ("0.0.0.0", "127.0.0.1", f"{sname}-{n}.{svc}") \
                and int(m.group(2)) in ports:
            return f"tcp://127.0.0.1:{ports[int(m.group(2))]}"
        for mp in sorted(where, key=len, reverse=True):
            if v == mp or v.startswith(mp + "/"):
                return where[mp] + v[len(mp):]
        return v

    os.makedirs(outdir, exist_ok=True)
    envl = [f"{k}={remap(v)}" for k, v in env.items()]
    path = os.path.join(outdir, "command.sh")
    with open(path, "w") as fh:
        fh.write("#!/bin/sh\n# the pod's argv and environment (k8s_split.py)\n"
                 "exec env -i PATH=\"$POD_PATH\" "
                 + " ".join(f'${{{v}:+"{v}=${v}"}}' for v in
                            ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"))
                 + " " + " ".join(shlex.quote(x) for x in envl) + " "
                 + " ".join(shlex.quote(remap(str(a))) for a in c["command"]) + "\n")
    os.chmod(path, 0o755)
    with open(os.path.join(outdir, "secret"), "w") as fh:
        for mp, vol in ms.items():
            if "secret" in vol:
                for p, key in secret_files(vol).items():
                    fh.write(f"{key} {where[mp]}/{p}\n")
    with open(os.path.join(outdir, "env"), "w") as fh:
        fh.writelines(x + "\n" for x in envl)


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "check":
            check(argv[2], argv[3])
        elif len(argv) == 10 and argv[1] == "pod" and argv[4] in ("broker", "serve", "worker"):
            pod(argv[2], int(argv[3]), argv[4], argv[5], argv[6], int(argv[7]),
                int(argv[8]), int(argv[9]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
