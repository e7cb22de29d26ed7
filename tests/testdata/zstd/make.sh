#!/usr/bin/env bash
# Makes ./oci: the golden "basic" image with its layers recompressed as zstd
# (OCI media types; the top layer as two concatenated zstd frames). The
# config is basic's, byte for byte: same layer contents, same diff_ids.
# Needs Debian's zstd and python3. Run from this folder: ./make.sh
set -euo pipefail
src=../basic/oci
rm -rf oci && mkdir -p oci/blobs/sha256
python3 - "$src" <<'PY'
import gzip, hashlib, json, os, subprocess, sys
src = sys.argv[1]
index = json.load(open(f"{src}/index.json"))
manifest = json.load(open(f"{src}/blobs/sha256/{index['manifests'][0]['digest'][7:]}"))
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    open(f"oci/blobs/sha256/{digest}", "wb").write(data)
    return f"sha256:{digest}", len(data)
def zstd(data):
    return subprocess.run(["zstd", "-q", "-19", "-c"], input=data, capture_output=True, check=True).stdout
layers = []
for i, layer in enumerate(manifest["layers"]):
    tar = gzip.decompress(open(f"{src}/blobs/sha256/{layer['digest'][7:]}", "rb").read())
    if i == len(manifest["layers"]) - 1:
        blob = zstd(tar[:4096]) + zstd(tar[4096:])  # two frames
    else:
        blob = zstd(tar)
    digest, size = put(blob)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": digest, "size": size})
config = open(f"{src}/blobs/sha256/{manifest['config']['digest'][7:]}", "rb").read()
cdigest, csize = put(config)
out = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
       "layers": layers}
mdigest, msize = put(json.dumps(out, indent=2).encode())
json.dump({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
           "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": mdigest,
                          "size": msize, "annotations": {"org.opencontainers.image.ref.name": "zstd"}}]},
          open("oci/index.json", "w"), indent=2)
open("oci/oci-layout", "w").write('{"imageLayoutVersion": "1.0.0"}')
PY
