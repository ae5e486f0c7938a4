#!/usr/bin/env python3
"""Writes the Kubernetes protobuf message table that the apiserver decodes request bodies with.

kubectl's typed-client commands (`create namespace`, `create deployment`, ...) send bodies as
`application/vnd.kubernetes.protobuf`. Decoding them needs, per message, each field's number,
wire type and JSON name. The numbers and types come from the prost code of the `k8s-pb` crate
(a dev-dependency of ferry-apiserver, so `cargo metadata` finds its source); the JSON names
come from ferry's own checked-in JSON Schemas (the names prost turned into snake_case are
matched back through the same snake_case rule). Only the messages reachable from the kinds
ferry serves are kept.

It writes a second table from the same source: the merge strategy of every field of those
messages, read from the Go markers k8s-pb keeps in its doc comments (`+patchMergeKey`,
`+patchStrategy`, `+listType`, `+listMapKey`, the same markers the OpenAPI spec's
`x-kubernetes-patch-merge-key`, `x-kubernetes-patch-strategy`, `x-kubernetes-list-type` and
`x-kubernetes-list-map-keys` come from). ferry-schema's `merge` module reads it; strategic merge
patch and server-side apply walk objects by it.

Usage: python3 ops/protobuf/generate.py           (rewrites both tables)
       python3 ops/protobuf/generate.py --check   (fails if a checked-in table is stale)
"""
import glob
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "apiserver", "src", "api", "protobuf", "messages.json")
MERGE_OUT = os.path.join(ROOT, "schema", "src", "merge", "strategy.json")

# Messages that are not kinds of ours but arrive as request bodies.
EXTRA_ROOTS = [
    "apimachinery.pkg.apis.meta.v1.DeleteOptions",
    "api.autoscaling.v1.Scale",
    "api.core.v1.Binding",
]
# Group (as in apiVersion) -> the k8s-pb module of its API package.
GROUP_PACKAGE = {
    "": "api.core",
    "apps": "api.apps",
    "batch": "api.batch",
    "coordination.k8s.io": "api.coordination",
    "discovery.k8s.io": "api.discovery",
    "networking.k8s.io": "api.networking",
    "policy": "api.policy",
    "autoscaling": "api.autoscaling",
    "rbac.authorization.k8s.io": "api.rbac",
    "scheduling.k8s.io": "api.scheduling",
    "storage.k8s.io": "api.storage",
    "apiextensions.k8s.io": "apiextensions_apiserver.pkg.apis.apiextensions",
    "apiregistration.k8s.io": "kube_aggregator.pkg.apis.apiregistration",
}


def k8s_pb_source():
    meta = json.loads(
        subprocess.check_output(
            ["cargo", "metadata", "--format-version", "1", "--manifest-path",
             os.path.join(ROOT, "Cargo.toml")],
            cwd=ROOT,
        )
    )
    for package in meta["packages"]:
        if package["name"] == "k8s-pb":
            return os.path.join(os.path.dirname(package["manifest_path"]), "src"), package["version"]
    sys.exit("generate.py: k8s-pb is not in the dependency graph (a dev-dependency of ferry-apiserver)")


def snake(name):
    """heck's to_snake_case, which prost-build applies to proto field names."""
    words = []
    for part in re.split(r"[^0-9A-Za-z]+", name):
        if not part:
            continue
        init, mode = 0, "boundary"
        for i, c in enumerate(part):
            if i + 1 == len(part):
                words.append(part[init:])
                break
            nxt = part[i + 1]
            next_mode = "lower" if c.islower() else "upper" if c.isupper() else mode
            if next_mode == "lower" and nxt.isupper():
                words.append(part[init:i + 1])
                init, mode = i + 1, "boundary"
            elif mode == "upper" and c.isupper() and nxt.islower():
                words.append(part[init:i])
                init, mode = i, "boundary"
            else:
                mode = next_mode
    return "_".join(w.lower() for w in words)


def lower_camel(rust_name):
    head, *rest = rust_name.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest)


FIELD = re.compile(r"#\[prost\((?P<attr>[^\]]*)\)\]\s*pub (?:r#)?(?P<name>\w+):\s*(?P<ty>.*?),\s*(?=#\[prost|$)", re.S)
# `pub struct Empty {}` is one line; every other struct ends with a `}` line of its own.
STRUCT = re.compile(r"pub struct (\w+) \{(?:\}|(.*?)\n\})", re.S)


def resolve(module, rust_type):
    """The message key (module path . Name) a Rust type names, relative to `module`."""
    ty = rust_type
    for wrapper in ("::core::option::Option<", "::prost::alloc::vec::Vec<", "::prost::alloc::boxed::Box<"):
        ty = ty.replace(wrapper, "")
    ty = re.sub(r"\s+", "", ty.replace(">", "")).rstrip(",")
    if "BTreeMap<" in ty:
        ty = ty.split(",")[-1].strip()
    parts = ty.split("::")
    base = module.split(".")
    while parts and parts[0] == "super":
        parts.pop(0)
        base.pop()
    return ".".join(base + parts[:-1] + [parts[-1]]) if parts[:-1] else ".".join(base + parts)


def parse_messages(src):
    messages = {}
    for path in glob.glob(os.path.join(src, "**", "mod.rs"), recursive=True):
        module = os.path.relpath(os.path.dirname(path), src).replace(os.sep, ".")
        text = open(path, encoding="utf-8").read()
        text = "\n".join(l for l in text.splitlines() if not l.strip().startswith("//"))
        for name, body in STRUCT.findall(text):
            fields = []
            for m in FIELD.finditer(body.strip()):
                attr = [a.strip() for a in re.sub(r'"([^"]*)"', lambda g: g.group(1).replace(",", ";"), m.group("attr")).split(",")]
                tag = int(next(a for a in attr if a.startswith("tag")).split("=")[1])
                kind = attr[0]
                if kind.startswith("btree_map"):
                    key, value = [x.strip() for x in kind.split("=")[1].split(";")]
                    if key != "string":
                        sys.exit(f"generate.py: {module}.{name}.{m.group('name')}: map key {key}")
                    shape, wire = "map", value
                else:
                    shape = "repeated" if "repeated" in attr else "optional"
                    wire = kind.split("=")[0].strip()
                field = {"tag": tag, "rust": m.group("name"), "shape": shape, "type": wire}
                if wire == "message":
                    field["message"] = resolve(module, m.group("ty"))
                fields.append(field)
            messages[f"{module}.{name}"] = fields
    return messages


MARKER = re.compile(r"^\s*/// \+(patchMergeKey|patchStrategy|listType|listMapKey)=(\S+)\s*$")
FIELD_LINE = re.compile(r"^\s*pub (?:r#)?(\w+):")


def parse_markers(src):
    """Message key -> Rust field name -> {marker: value}, from the doc comments."""
    markers = {}
    for path in glob.glob(os.path.join(src, "**", "mod.rs"), recursive=True):
        module = os.path.relpath(os.path.dirname(path), src).replace(os.sep, ".")
        text = open(path, encoding="utf-8").read()
        for m in STRUCT.finditer(text):
            fields, pending = {}, {}
            for line in (m.group(2) or "").splitlines():
                marker = MARKER.match(line)
                if marker:
                    key, value = marker.groups()
                    if key == "listMapKey":
                        pending.setdefault(key, []).append(value)
                    else:
                        pending[key] = value
                    continue
                field = FIELD_LINE.match(line)
                if field:
                    if pending:
                        fields[field.group(1)] = pending
                    pending = {}
            markers[f"{module}.{m.group(1)}"] = fields
    return markers


def merge_table(keep, messages, markers):
    """The merge strategy table: message -> JSON field -> what strategic merge and apply need."""
    types = {}
    for key, entries in keep.items():
        fields = {}
        rust_names = {f["tag"]: f["rust"] for f in messages[key]}
        for entry in entries:
            tag, name, shape = entry[0], entry[1], entry[2]
            child = entry[4] if len(entry) > 4 else None
            if name == "":
                continue  # inline: its fields are folded in below
            mark = markers.get(key, {}).get(rust_names[tag], {})
            out = {}
            if child and not child.startswith(("apimachinery.pkg.util.intstr", "apimachinery.pkg.api.resource")):
                out["type"] = child
            if shape == "map":
                out["shape"] = "map"
            elif shape == "repeated":
                out["list"] = mark.get("listType", "atomic")
                if "listMapKey" in mark:
                    out["keys"] = mark["listMapKey"]
            if "patchMergeKey" in mark:
                out["mergeKey"] = mark["patchMergeKey"]
            if "patchStrategy" in mark:
                out["strategy"] = mark["patchStrategy"]
            if out and (set(out) != {"list"} or shape != "repeated" or out["list"] != "atomic" or child):
                fields[name] = out
            elif out.get("list") == "atomic":
                fields[name] = out
        types[key] = fields
    # Inline messages: the parent carries their fields.
    for key, entries in keep.items():
        for entry in entries:
            if entry[1] == "" and len(entry) > 4:
                types[key].update(types.get(entry[4], {}))
    return {k: v for k, v in sorted(types.items()) if v}


def upper_camel(name):
    """heck's to_upper_camel_case, which prost-build applies to proto message names."""
    return "".join(w[:1].upper() + w[1:] for w in snake(name).split("_"))


def json_names():
    """Message key (prost's module path and name) -> the property names of its OpenAPI
    definition, from ferry's checked-in schemas."""
    by_def = {}
    for path in glob.glob(os.path.join(ROOT, "schema", "jsonschema", "v*-standalone", "*.json")):
        doc = json.load(open(path, encoding="utf-8"))
        by_def.setdefault(doc["title"], set()).update(doc.get("properties", {}))
        for def_name, schema in doc.get("$defs", {}).items():
            by_def.setdefault(def_name, set()).update(schema.get("properties", {}))
    names = {}
    for def_name, props in by_def.items():
        if not def_name.startswith("io.k8s."):
            continue
        module, _, name = def_name[len("io.k8s."):].rpartition(".")
        # prost renames `HTTPIngressPath` to `HttpIngressPath` but keeps `CSIVolumeSource`.
        names[f"{module}.{upper_camel(name)}"] = props
        names[f"{module}.{name}"] = props
    return names


def root_kinds():
    roots = {}
    for path in glob.glob(os.path.join(ROOT, "schema", "jsonschema", "v*-standalone", "*.json")):
        doc = json.load(open(path, encoding="utf-8"))
        for gvk in doc.get("x-kubernetes-group-version-kind", []):
            package = GROUP_PACKAGE.get(gvk["group"])
            if package is None:
                continue  # ferry.dev kinds have no protobuf form
            api_version = f"{gvk['group']}/{gvk['version']}" if gvk["group"] else gvk["version"]
            roots[f"{api_version}/{gvk['kind']}"] = f"{package}.{gvk['version']}.{gvk['kind']}"
    roots["meta.k8s.io/v1/DeleteOptions"] = "apimachinery.pkg.apis.meta.v1.DeleteOptions"
    roots["v1/DeleteOptions"] = "apimachinery.pkg.apis.meta.v1.DeleteOptions"
    roots["autoscaling/v1/Scale"] = "api.autoscaling.v1.Scale"
    roots["v1/Binding"] = "api.core.v1.Binding"
    return roots


def main():
    src, version = k8s_pb_source()
    messages = parse_messages(src)
    props = json_names()
    kinds = root_kinds()
    keep, todo = {}, list(kinds.values()) + EXTRA_ROOTS
    guessed = []
    inherited = {}  # inline message -> the properties of the object it is inlined into
    while todo:
        key = todo.pop()
        if key in keep:
            continue
        if key not in messages:
            sys.exit(f"generate.py: no message {key} in k8s-pb {version}")
        parent = props.get(key) or inherited.get(key)
        known = {snake(p): p for p in parent or ()}
        # prost's snake_case of `podIPs` is `pod_ips`; heck's rule gives `pod_i_ps`.
        loose = {p.lower(): p for p in parent or ()}

        def lookup(rust):
            return known.get(rust) or loose.get(rust.replace("_", ""))

        out = []
        for f in messages[key]:
            name = lookup(f["rust"])
            child = messages.get(f.get("message"), [])
            if name is None and parent and child and all(lookup(c["rust"]) for c in child):
                # A Go struct embedded with `json:",inline"`: its own field in protobuf, its
                # fields at the parent's level in JSON. Marked by an empty name.
                name = ""
                inherited[f["message"]] = parent
            elif name is None:
                name = lower_camel(f["rust"])
                guessed.append(f"{key}.{name}")
            entry = [f["tag"], name, f["shape"], f["type"]]
            if "message" in f:
                entry.append(f["message"])
                todo.append(f["message"])
            out.append(entry)
        keep[key] = out
    table = {
        "source": f"k8s-pb {version}",
        "kinds": dict(sorted(kinds.items())),
        "messages": dict(sorted(keep.items())),
    }
    merge = merge_table(keep, messages, parse_markers(src))
    merge_rows = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in merge.items()]
    merge_text = (
        "{\n"
        + f'"source": {json.dumps(table["source"])},\n'
        + '"kinds": ' + json.dumps(table["kinds"], separators=(",", ":")) + ",\n"
        + '"types": {\n' + ",\n".join(merge_rows) + "\n}}\n"
    )
    rows = [f"{json.dumps(k)}: {json.dumps(v, separators=(',', ':'))}" for k, v in table["messages"].items()]
    text = (
        "{\n"
        + f'"source": {json.dumps(table["source"])},\n'
        + '"kinds": ' + json.dumps(table["kinds"], separators=(",", ":")) + ",\n"
        + '"messages": {\n' + ",\n".join(rows) + "\n}}\n"
    )
    if "--check" in sys.argv[1:]:
        for path, wanted in ((OUT, text), (MERGE_OUT, merge_text)):
            current = open(path, encoding="utf-8").read() if os.path.exists(path) else ""
            if current != wanted:
                sys.exit(f"generate.py: {os.path.relpath(path, ROOT)} is stale; run python3 ops/protobuf/generate.py")
        print(f"{os.path.relpath(OUT, ROOT)} is up to date ({len(keep)} messages)")
        print(f"{os.path.relpath(MERGE_OUT, ROOT)} is up to date ({len(merge)} types)")
        return
    for path, content in ((OUT, text), (MERGE_OUT, merge_text)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(content)
    print(f"{len(keep)} messages, {len(kinds)} kinds -> {os.path.relpath(OUT, ROOT)}")
    print(f"{len(merge)} types with merge strategies -> {os.path.relpath(MERGE_OUT, ROOT)}")
    for g in sorted(set(guessed)):
        print(f"  named by rule, not by schema: {g}")


if __name__ == "__main__":
    main()
