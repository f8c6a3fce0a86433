#!/usr/bin/env python3
"""Turns one container of a Deployment in `kubectl kustomize k8s` output into `podman run` arguments.

  k8s-podman.py RENDERED DEPLOYMENT CONTAINER args POD_NAME POD_IP [NAME=VALUE ...]
      NUL-separated podman run options: environment, user, read-only root, capabilities,
      no-new-privileges, tmpfs for emptyDirs, memory limit. NAME=VALUE pairs override or add
      environment variables (what a pod gets from Kubernetes and a container here cannot).
  k8s-podman.py RENDERED DEPLOYMENT CONTAINER command
      the container's args, NUL-separated.
  k8s-podman.py RENDERED DEPLOYMENT CONTAINER servicemonitor NAME
      the container port and path that ServiceMonitor NAME scrapes.
  k8s-podman.py RENDERED DEPLOYMENT CONTAINER info
      shell assignments: image, ports by name, probe paths and ports, grace period, and the
      Service name and port a connection string's host refers to.

The manifests are the source of truth: the check runs what they describe, so a change there
(a new variable, a stricter securityContext) reaches the containers without editing the check.
What cannot be reproduced outside Kubernetes is reported on stderr, never silently dropped.
"""
import re
import sys

import yaml


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def find(docs, kind, name):
    for d in docs:
        if d.get("kind") == kind and d["metadata"]["name"] == name:
            return d
    sys.exit(f"error: no {kind} {name} in the rendered manifests")


def container_of(docs, deployment, name):
    pod = find(docs, "Deployment", deployment)["spec"]["template"]
    for c in pod["spec"]["containers"]:
        if c["name"] == name:
            return pod, c
    sys.exit(f"error: Deployment {deployment} has no container {name}")


def quantity_to_podman(q):
    """Kubernetes memory quantity (512Mi, 1Gi, 1G) to podman's --memory (bytes)."""
    m = re.fullmatch(r"(\d+)([KMGT]i?)?", str(q))
    if not m:
        sys.exit(f"error: cannot read memory quantity {q!r}")
    units = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
             "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    return str(int(m.group(1)) * units[m.group(2)])


def port_of(container, ref):
    for p in container.get("ports", []):
        if ref in (p.get("name"), p["containerPort"]):
            return p["containerPort"]
    sys.exit(f"error: container {container['name']} has no port {ref}")


def args(pod, c, pod_name, pod_ip, overrides):
    spec = pod["spec"]
    out = []
    field_values = {"metadata.name": pod_name, "metadata.namespace": pod["metadata"].get("namespace")
                    or "classifier", "status.podIP": pod_ip}
    env = {}
    for e in c.get("env", []):
        if "value" in e:
            env[e["name"]] = str(e["value"])
        elif "fieldRef" in e.get("valueFrom", {}):
            env[e["name"]] = field_values[e["valueFrom"]["fieldRef"]["fieldPath"]]
        elif "secretKeyRef" in e.get("valueFrom", {}) and e["valueFrom"]["secretKeyRef"].get("optional"):
            # An optional Secret that this check does not create: Kubernetes leaves the variable unset.
            print(f"note: {c['name']}: {e['name']} comes from an optional Secret; unset here", file=sys.stderr)
        else:
            sys.exit(f"error: {c['name']}: cannot reproduce {e['name']} ({e.get('valueFrom')})")
    for kv in overrides:
        k, _, v = kv.partition("=")
        if k in env and env[k] != v:
            print(f"note: {c['name']}: {k}={v} instead of the manifests' {env[k]}", file=sys.stderr)
        env[k] = v
    for k, v in env.items():
        out += ["--env", f"{k}={v}"]

    psc, csc = spec.get("securityContext", {}), c.get("securityContext", {})
    user = csc.get("runAsUser", psc.get("runAsUser"))
    group = csc.get("runAsGroup", psc.get("runAsGroup"))
    if user is not None:
        out += ["--user", f"{user}:{group}" if group is not None else str(user)]
    if psc.get("fsGroup") is not None:
        out += ["--group-add", str(psc["fsGroup"])]
    if csc.get("readOnlyRootFilesystem"):
        # Only what the pod mounts is writable: no podman tmpfs on /run, /tmp and /var/tmp either.
        out += ["--read-only", "--read-only-tmpfs=false"]
    for cap in csc.get("capabilities", {}).get("drop", []):
        out += ["--cap-drop", cap]
    for cap in csc.get("capabilities", {}).get("add", []):
        out += ["--cap-add", cap]
    if csc.get("allowPrivilegeEscalation") is False:
        out += ["--security-opt", "no-new-privileges"]

    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for m in c.get("volumeMounts", []):
        v = volumes[m["name"]]
        if "emptyDir" in v:
            opts = ["rw", "mode=1777"]
            if v["emptyDir"].get("sizeLimit"):
                opts.append("size=" + quantity_to_podman(v["emptyDir"]["sizeLimit"]))
            out += ["--tmpfs", f"{m['mountPath']}:{','.join(opts)}"]
        elif "secret" in v and v["secret"].get("optional"):
            print(f"note: {c['name']}: {m['mountPath']} holds optional Secret {v['secret']['secretName']}; "
                  "not created here, so the folder is absent", file=sys.stderr)
        else:
            sys.exit(f"error: {c['name']}: cannot reproduce volume {m['name']} ({v})")

    mem = c.get("resources", {}).get("limits", {}).get("memory")
    if mem:
        out += ["--memory", quantity_to_podman(mem)]
    return out


def info(docs, pod, c):
    def probe(kind):
        p = c.get(kind, {}).get("httpGet")
        return (p["path"], port_of(c, p["port"])) if p else ("", "")

    lines = {"image": c["image"], "grace": pod["spec"].get("terminationGracePeriodSeconds", 30)}
    for p in c.get("ports", []):
        lines["port_" + p.get("name", str(p["containerPort"])).replace("-", "_")] = p["containerPort"]
    lines["ready_path"], lines["ready_port"] = probe("readinessProbe")
    lines["health_path"], lines["health_port"] = probe("livenessProbe")
    for e in c.get("env", []):
        if e["name"] == "Cluster__RedisConnectionString":
            host, _, port = e["value"].partition(":")
            lines["redis_host"], lines["redis_port"] = host, port or 6379
    return "".join(f"{k}={v}\n" for k, v in lines.items())


def main():
    rendered, deployment, container, mode, *rest = sys.argv[1:]
    docs = load(rendered)
    pod, c = container_of(docs, deployment, container)
    if mode == "args":
        sys.stdout.write("".join(a + "\0" for a in args(pod, c, rest[0], rest[1], rest[2:])))
    elif mode == "command":
        # The container's args (after the image's entrypoint), NUL-separated.
        sys.stdout.write("".join(str(a) + "\0" for a in c.get("args", [])))
    elif mode == "info":
        sys.stdout.write(info(docs, pod, c))
    elif mode == "servicemonitor":
        # ServiceMonitor RESOURCE: the port name and path it scrapes, resolved to the container port.
        sm = find(docs, "ServiceMonitor", rest[0])["spec"]["endpoints"][0]
        svc = next(d for d in docs if d["kind"] == "Service" and
                   all(d["metadata"].get("labels", {}).get(k) == v for k, v in find(docs, "ServiceMonitor", rest[0])["spec"]["selector"]["matchLabels"].items())
                   and any(p["name"] == sm["port"] for p in d["spec"]["ports"]))
        target = next(p["targetPort"] for p in svc["spec"]["ports"] if p["name"] == sm["port"])
        sys.stdout.write(f"scrape_port={port_of(c, target)}\nscrape_path={sm.get('path', '/metrics')}\n")
    else:
        sys.exit(f"error: unknown mode {mode}")


if __name__ == "__main__":
    main()
