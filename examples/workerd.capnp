# docker-save's worker (examples/worker.ts) served by workerd, Cloudflare's
# open-source Workers runtime. Bundle the worker next to this file, then serve:
#
#   npx esbuild examples/worker.ts --bundle --format=esm --platform=browser \
#     --outfile=examples/worker.js
#   npx workerd serve examples/workerd.capnp
#
# tests/integration/workerd.test.ts runs this file, with its own port and
# registries, with and without nodejs_compat.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .dockerSave),
    # Where the worker's fetch() goes. workerd's default allows public
    # addresses only; "local" adds loopback, for a registry on this machine.
    (name = "internet", network = (
      allow = ["public", "local"],
      tlsOptions = (trustBrowserCas = true),
    )),
  ],
  sockets = [
    (name = "http", address = "127.0.0.1:8080", http = (), service = "main"),
  ],
);

const dockerSave :Workerd.Worker = (
  modules = [(name = "worker.js", esModule = embed "worker.js")],
  compatibilityDate = "2025-09-01",
  # Native gunzip (node:zlib): without it, layers are inflated in pure JS
  # (about twice the CPU); sha256 is native either way.
  compatibilityFlags = ["nodejs_compat"],
  bindings = [
    # The registries ?image= may pull from, comma-separated, or "*".
    (name = "REGISTRIES", text = "127.0.0.1:5000"),
  ],
);
