"""Read deploy/kubernetes/ for tests/integration/deploy_kubernetes.sh.

  k8s_manifests.py check DIR BIN
      parse every manifest and check how the pieces fit (below); print one
      line per check, exit 1 at the first that fails
  k8s_manifests.py pod DIR broker|worker OUTDIR ROOT BINDPORT STATUSPORT
      what the broker's (StatefulSet) or a worker's (Deployment) container
      would get, remapped to this machine, as files in OUTDIR:
        env        VAR=VALUE lines: the ConfigMap (envFrom), then env
                   (the downward API's pod name is "<workload>-test-pod")
        command.sh the container's command and args, with exactly that
                   environment (env -i), as ${AS_POD} with PATH=$POD_PATH
        readiness.sh, liveness.sh  the broker's probe commands, the same way
        secret     "KEY FILE MODE" lines: the Secret's items as the pod
                   would see them, MODE the octal defaultMode
        volumes    "DIR claim|secret" lines: the host directory of each mount
      Remapping: a path under a mount goes to the volume's directory under
      ROOT (claims: ROOT/pvc/NAME, shared by the pods; Secret volumes:
      ROOT/WORKLOAD/VOLUME); tcp://0.0.0.0, 127.0.0.1 or the Service's name
      with the bind or status port becomes tcp://127.0.0.1:BINDPORT or
      :STATUSPORT.

Needs PyYAML (Debian: python3-yaml).
"""
import os
import re
import shlex
import subprocess
import sys

import yaml

PREFIX = {"softlabel-broker": "SOFTLABEL_BROKER_",
          "softlabel-teacher": "SOFTLABEL_TEACHER_"}
KEYS_FROM_MAKE_KEYS = {"broker.key", "broker.pub", "probe.key", "probe.pub",
                       "workers.key", "workers.pub"}


class Fail(Exception):
    pass


def need(cond, what):
    if not cond:
        raise Fail(what)


def load(d):
    objs = {}
    files = sorted(f for f in os.listdir(d) if f.endswith((".yaml", ".yml")))
    for f in files:
        with open(os.path.join(d, f)) as fh:
            try:
                docs = [x for x in yaml.safe_load_all(fh) if x is not None]
            except yaml.YAMLError as e:
                raise Fail(f"{f}: not YAML: {e}")
        for doc in docs:
            need(isinstance(doc, dict), f"{f}: a document that is not a mapping")
            if f.startswith("kustomization."):
                objs.setdefault("Kustomization", []).append((f, doc))
                continue
            for k in ("apiVersion", "kind", "metadata"):
                need(k in doc, f"{f}: no {k}")
            need("name" in doc["metadata"], f"{f}: no metadata.name")
            need("namespace" not in doc["metadata"],
                 f"{f}: names a namespace (the manifests must not)")
            objs.setdefault(doc["kind"], []).append((f, doc))
    return files, objs


def one(objs, kind):
    need(len(objs.get(kind, [])) == 1, f"want exactly one {kind}, found "
         f"{len(objs.get(kind, []))}")
    return objs[kind][0][1]


def port_of(ep):
    m = re.fullmatch(r"tcp://([^:/]+):(\d+)", ep)
    need(m is not None, f"endpoint {ep!r} is not tcp://HOST:PORT")
    return m.group(1), int(m.group(2))


def options(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True)
    need(out.returncode == 0, f"{binary} --help failed")
    return set(re.findall(r"^\s+--([a-z][a-z0-9-]*)", out.stdout, re.M))


def container(workload):
    cs = workload["spec"]["template"]["spec"]["containers"]
    need(len(cs) == 1, f"{workload['metadata']['name']}: want one container")
    return cs[0]


def config_env(objs, workload, c=None, pod_name=None):
    """The environment of container c (default: the workload's only one):
    ConfigMaps of envFrom, then env; the downward API's pod name is
    pod_name (default "<workload>-test-pod")."""
    c = c or container(workload)
    env = {}
    cms = {d["metadata"]["name"]: d for _, d in objs.get("ConfigMap", [])}
    for src in c.get("envFrom", []):
        name = src["configMapRef"]["name"]
        need(name in cms, f"envFrom names ConfigMap {name}, which is not here")
        env.update({k: str(v) for k, v in cms[name].get("data", {}).items()})
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        else:
            ref = e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
            need(ref == "metadata.name", f"env {e['name']}: only values and "
                 "the pod's name are understood here")
            env[e["name"]] = pod_name or workload["metadata"]["name"] + "-test-pod"
    return env


def mounts(workload, c=None):
    """mountPath -> volume, for container c (default: the only one)."""
    vols = {v["name"]: v for v in workload["spec"]["template"]["spec"].get("volumes", [])}
    for t in workload["spec"].get("volumeClaimTemplates", []):
        vols[t["metadata"]["name"]] = {"name": t["metadata"]["name"], "claimTemplate": t}
    out = {}
    for m in (c or container(workload)).get("volumeMounts", []):
        need(m["name"] in vols, f"mount {m['mountPath']}: no volume {m['name']}")
        out[m["mountPath"]] = vols[m["name"]]
    return out


def secret_files(vol):
    """The files a secret volume shows: {path: key}."""
    items = vol["secret"].get("items")
    need(items, f"secret volume {vol['name']}: list its items (paths are checked)")
    return {i["path"]: i["key"] for i in items}


def probe_cmd(c, kind):
    p = c.get(kind)
    need(p is not None, f"{c['name']}: no {kind}")
    cmd = p.get("exec", {}).get("command")
    need(cmd, f"{c['name']}: {kind} is not an exec command")
    return [str(x) for x in cmd]


def check(d, bindir):
    files, objs = load(d)
    print(f"parsed {len(files)} files: "
          + ", ".join(f"{k} x{len(v)}" for k, v in sorted(objs.items())))

    kz = one(objs, "Kustomization")
    listed = set(kz.get("resources", []))
    need(listed == set(files) - {"kustomization.yaml"},
         f"kustomization.yaml lists {sorted(listed)}, the directory holds "
         f"{sorted(set(files) - {'kustomization.yaml'})}")
    need("namespace" not in kz, "kustomization.yaml sets a namespace")
    print("kustomization.yaml lists every manifest")

    cm = one(objs, "ConfigMap")
    sts = one(objs, "StatefulSet")
    dep = one(objs, "Deployment")
    svc = one(objs, "Service")
    one(objs, "PersistentVolumeClaim")
    need(sts["spec"].get("replicas") == 1, "the broker StatefulSet must have 1 replica")
    broker, worker = container(sts), container(dep)
    need(broker["command"][0] == "softlabel-broker", "StatefulSet does not run softlabel-broker")
    need(worker["command"][0] == "softlabel-teacher", "Deployment does not run softlabel-teacher")
    print("kinds: ConfigMap, Service, PVC, StatefulSet (1 replica, softlabel-broker), "
          "Deployment (softlabel-teacher)")

    # Every variable names a real option of its program.
    opts = {p: options(os.path.join(bindir, p)) for p in PREFIX}
    seen = set()
    for wl in (sts, dep):
        for var in config_env(objs, wl):
            prog = [p for p, pre in PREFIX.items() if var.startswith(pre)]
            need(prog, f"{var}: neither SOFTLABEL_BROKER_* nor SOFTLABEL_TEACHER_*")
            opt = var[len(PREFIX[prog[0]]):].lower().replace("_", "-")
            need(opt in opts[prog[0]] and opt not in ("help", "version"),
                 f"{var}: {prog[0]} has no option --{opt}")
            seen.add(var)
    print(f"{len(seen)} SOFTLABEL_* variables, each an option in its program's --help")

    benv, wenv = config_env(objs, sts), config_env(objs, dep)
    bhost, bport = port_of(benv["SOFTLABEL_BROKER_BIND"])
    shost, sport = port_of(benv["SOFTLABEL_BROKER_STATUS_BIND"])
    need(bhost == "0.0.0.0" and shost == "0.0.0.0",
         "the broker must bind 0.0.0.0 in a pod (the Service reaches it from outside)")
    cports = {p["name"]: p["containerPort"] for p in broker.get("ports", [])}
    sports = {}
    for p in svc["spec"]["ports"]:
        tp = p.get("targetPort", p["port"])
        sports[p["port"]] = cports.get(tp, tp)
    need(sorted(sports.items()) == sorted({bport: bport, sport: sport}.items()),
         f"Service ports {sports} do not match --bind :{bport} and "
         f"--status-bind :{sport}")
    if benv.get("SOFTLABEL_BROKER_METRICS_BIND"):
        mhost, _, mport = benv["SOFTLABEL_BROKER_METRICS_BIND"].rpartition(":")
        ann = sts["spec"]["template"]["metadata"].get("annotations", {})
        need(mhost == "0.0.0.0" and cports.get("metrics") == int(mport),
             f"--metrics-bind {mhost}:{mport} is not 0.0.0.0 and the "
             f"container port 'metrics' ({cports.get('metrics')})")
        need(ann.get("prometheus.io/scrape") == "true" and
             ann.get("prometheus.io/port") == mport and
             ann.get("prometheus.io/path") == "/metrics",
             f"the broker pod's prometheus.io annotations {ann} do not say "
             f"scrape port {mport} path /metrics")
        print(f"metrics on container port {mport}, annotated for Prometheus")
    sel = svc["spec"]["selector"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    need(all(labels.get(k) == v for k, v in sel.items()),
         "the Service's selector does not match the broker's pods")
    need(sts["spec"].get("serviceName") == svc["metadata"]["name"],
         "the StatefulSet's serviceName is not the Service")
    chost, cport = port_of(wenv["SOFTLABEL_TEACHER_CONNECT"])
    need(chost == svc["metadata"]["name"] and cport == bport,
         f"workers connect to {chost}:{cport}, the Service is "
         f"{svc['metadata']['name']}:{bport}")
    print(f"Service {svc['metadata']['name']} ports {bport} (workers) and {sport} "
          "(status) match the binds; workers connect to it")

    bm = mounts(sts)
    tmpl = {t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])}
    need(tmpl, "the StatefulSet has no volumeClaimTemplates")
    store = benv["SOFTLABEL_BROKER_STORE"]
    cache_mount = [m for m in bm if store == m or store.startswith(m + "/")]
    need(cache_mount and "claimTemplate" in bm[cache_mount[0]],
         f"the store {store} is not on a volumeClaimTemplate's volume")
    need(cache_mount[0] == "/var/lib/softlabel",
         f"the cache volume is at {cache_mount[0]}, the image's cache dir is /var/lib/softlabel")
    print(f"store {store} on the volumeClaimTemplate {bm[cache_mount[0]]['name']}")

    # Paths in env and probes lie on mounted volumes; secret paths are
    # items of the Secret, and each secret key has its .pub beside it.
    for wl, env in ((sts, benv), (dep, wenv)):
        name = wl["metadata"]["name"]
        ms = mounts(wl)
        c = container(wl)
        # Each pod gets the whole ConfigMap; its program reads its prefix.
        pre = PREFIX[c["command"][0]]
        values = [v for k, v in env.items() if k.startswith(pre) and v.startswith("/")]
        if c is broker:
            for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
                values += [a for a in probe_cmd(c, kind) if a.startswith("/")]
        for v in values:
            m = [mp for mp in ms if v == mp or v.startswith(mp + "/")]
            need(m, f"{name}: {v} is on no mounted volume")
            vol = ms[m[0]]
            if "secret" in vol:
                files = secret_files(vol)
                rel = v[len(m[0]) + 1:]
                is_dir = any(f.startswith(rel + "/") for f in files)
                need(rel in files or is_dir,
                     f"{name}: {v} is not a file of the Secret volume at {m[0]}")
                if rel.endswith(".key"):
                    need(rel[:-4] + ".pub" in files,
                         f"{name}: {v} without its .pub beside it (the pair check)")
        for mp, vol in ms.items():
            if "secret" not in vol:
                continue
            need(vol["secret"].get("defaultMode") == 0o440,
                 f"{name}: Secret volume mode {vol['secret'].get('defaultMode', 0o644):o}, want 0440")
            keys = set(secret_files(vol).values())
            need(keys <= KEYS_FROM_MAKE_KEYS,
                 f"{name}: Secret keys {sorted(keys - KEYS_FROM_MAKE_KEYS)} are not "
                 "files deploy/make-keys.sh writes")
    allow = benv["SOFTLABEL_BROKER_ALLOW_KEYS"]
    kvol = [mp for mp in bm if allow.startswith(mp + "/")][0]
    admitted = {k for p, k in secret_files(bm[kvol]).items()
                if p.startswith(allow[len(kvol) + 1:] + "/")}
    need(admitted == {"probe.pub", "workers.pub"},
         f"the allow-list holds {sorted(admitted)}, want probe.pub and workers.pub")
    need(wenv["SOFTLABEL_TEACHER_CURVE_SECRET"].endswith("/workers.key"),
         "workers do not use the workers key")
    print("every path in env and probes is on a mounted volume; Secret items match "
          "(mode 0440, pairs beside each other, allow-list = probe + workers)")

    # Probes: softlabel status on the status port with the probe key.
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        cmd = probe_cmd(broker, kind)
        need(cmd[:2] == ["softlabel", "status"], f"broker {kind}: not softlabel status")
        h, p = port_of(cmd[2])
        need(h == "127.0.0.1" and p == sport,
             f"broker {kind}: asks {cmd[2]}, the status endpoint is :{sport}")
        need(cmd[cmd.index("--curve-secret") + 1].endswith("/probe.key"),
             f"broker {kind}: not the probe key")
        need(cmd[cmd.index("--curve-server") + 1] == benv["SOFTLABEL_BROKER_CURVE_SECRET"][:-4] + ".pub",
             f"broker {kind}: --curve-server is not the broker's .pub")
        t = int(cmd[cmd.index("--timeout") + 1])
        need(t < broker[kind].get("timeoutSeconds", 1),
             f"broker {kind}: --timeout {t} is not below timeoutSeconds")
    print(f"broker probes: softlabel status tcp://127.0.0.1:{sport} with the probe key")

    for wl in (sts, dep):
        name = wl["metadata"]["name"]
        ps = wl["spec"]["template"]["spec"]
        sc = ps.get("securityContext", {})
        need(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10001
             and sc.get("runAsGroup") == 10001 and sc.get("fsGroup") == 10001,
             f"{name}: pod securityContext must be runAsNonRoot, uid/gid/fsGroup 10001")
        csc = container(wl).get("securityContext", {})
        need(csc.get("allowPrivilegeEscalation") is False,
             f"{name}: allowPrivilegeEscalation must be false")
        need(ps.get("enableServiceLinks") is False,
             f"{name}: enableServiceLinks must be false (SOFTLABEL_BROKER_PORT=...)")
        req = container(wl).get("resources", {}).get("requests", {})
        need("cpu" in req and "memory" in req, f"{name}: no cpu/memory requests")
    need(dep["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30) > 10,
         "workers' terminationGracePeriodSeconds must exceed their 10 s drain")
    names = [e for e in worker.get("env", []) if e["name"] == "SOFTLABEL_TEACHER_WORKER_NAME"]
    need(names and names[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
         == "metadata.name", "SOFTLABEL_TEACHER_WORKER_NAME is not the pod's name")
    print("non-root (10001, fsGroup 10001), no privilege escalation, no service "
          "links, requests set, worker grace > 10 s, worker name = pod name")


def host_dir(wl, vol, root):
    """Where a volume of workload wl lives on this machine: claims (and
    claim templates) under ROOT/pvc/, so that pods share them; a Secret
    volume is the pod's own view, ROOT/<workload>/<volume>."""
    if "persistentVolumeClaim" in vol:
        return os.path.join(root, "pvc", vol["persistentVolumeClaim"]["claimName"])
    if "claimTemplate" in vol:
        return os.path.join(root, "pvc", f"{vol['name']}-{wl['metadata']['name']}-0")
    return os.path.join(root, wl["metadata"]["name"], vol["name"])


def pod(d, which, outdir, root, bind_port, status_port):
    _, objs = load(d)
    wl = one(objs, "StatefulSet" if which == "broker" else "Deployment")
    sts = one(objs, "StatefulSet")
    svc = one(objs, "Service")["metadata"]["name"]
    benv = config_env(objs, sts)
    ports = {port_of(benv["SOFTLABEL_BROKER_BIND"])[1]: bind_port,
             port_of(benv["SOFTLABEL_BROKER_STATUS_BIND"])[1]: status_port}
    c = container(wl)
    env = config_env(objs, wl)
    ms = mounts(wl)
    where = {mp: host_dir(wl, vol, root) for mp, vol in ms.items()}

    def remap(v):
        m = re.fullmatch(r"tcp://([^:/]+):(\d+)", v)
        if m and m.group(1) in ("0.0.0.0", "127.0.0.1", svc) and int(m.group(2)) in ports:
            return f"tcp://127.0.0.1:{ports[int(m.group(2))]}"
        for mp in sorted(where, key=len, reverse=True):
            if v == mp or v.startswith(mp + "/"):
                return where[mp] + v[len(mp):]
        return v

    os.makedirs(outdir, exist_ok=True)

    def write(name, lines):
        with open(os.path.join(outdir, name), "w") as fh:
            fh.writelines(line + "\n" for line in lines)

    # The metrics port (HOST:PORT, no tcp://): any free one on loopback.
    envl = [f"{k}={'127.0.0.1:0' if k == 'SOFTLABEL_BROKER_METRICS_BIND' else remap(v)}"
            for k, v in env.items()]
    write("env", envl)

    def script(name, argv):
        # The pod's user and PATH come from the caller: AS_POD (a command
        # prefix such as setpriv ...) and POD_PATH. Sanitizer settings pass.
        path = os.path.join(outdir, name + ".sh")
        write(name + ".sh", [
            "#!/bin/sh",
            "# " + name + ": the pod's argv and environment (k8s_manifests.py)",
            "# shellcheck disable=SC2086",
            "exec ${AS_POD:-} env -i PATH=\"$POD_PATH\" "
            + " ".join(f'${{{v}:+"{v}=${v}"}}' for v in
                       ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"))
            + " " + " ".join(shlex.quote(x) for x in envl)
            + " " + " ".join(shlex.quote(a) for a in argv)])
        os.chmod(path, 0o755)

    script("command", [remap(str(a)) for a in c["command"] + c.get("args", [])])
    if which == "broker":
        script("readiness", [remap(a) for a in probe_cmd(c, "readinessProbe")])
        script("liveness", [remap(a) for a in probe_cmd(c, "livenessProbe")])
    lines = []
    for mp, vol in ms.items():
        if "secret" in vol:
            mode = vol["secret"].get("defaultMode", 0o644)
            for path, key in secret_files(vol).items():
                lines.append(f"{key} {where[mp]}/{path} {mode:o}")
    write("secret", lines)
    write("volumes", [f"{where[mp]} {'secret' if 'secret' in ms[mp] else 'claim'}"
                      for mp in ms])


def main(argv):
    try:
        if len(argv) == 4 and argv[1] == "check":
            check(argv[2], argv[3])
        elif len(argv) == 8 and argv[1] == "pod" and argv[3] in ("broker", "worker"):
            pod(argv[2], argv[3], argv[4], argv[5], int(argv[6]), int(argv[7]))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except Fail as e:
        print(f"FAIL: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
