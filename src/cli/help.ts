/**
 * The `--help` text of the `docker-save` command.
 *
 * @module
 */

/**
 * The `--help` text.
 *
 * @example
 * ```ts
 * import { USAGE } from "./help.ts";
 * console.log(USAGE);
 * ```
 */
export const USAGE = `Usage: docker-save [options] SOURCE...

Write a docker save-compatible tarball (what \`docker load\` reads) of one or
more images, byte-identical to containerregistry's multi_image_tarball.

Sources (any number, mixed):
  [docker://]REF[=TAG]  pull REF = [REGISTRY/]REPO[:TAG|@DIGEST] from a
                        registry (Docker Hub by default, library/ for
                        one-part names), saved as TAG. TAG defaults to REF as
                        written (REPO:latest without a tag; a REF with only a
                        digest needs =TAG). localhost, 127.0.0.0/8 and [::1]
                        registries are reached over plain HTTP.
  oci:DIR[:REF][=TAG]   the image of OCI layout DIR whose index entry has the
                        org.opencontainers.image.ref.name REF (REF may be
                        omitted when the index has one entry), saved as TAG.
                        TAG defaults to REF.
  oci-archive:FILE[:REF][=TAG]
                        the same, from an OCI layout tarball; without REF
                        and TAG, its one entry's name (a full ref.name, else
                        io.containerd.image.name) is the TAG
  docker-archive:FILE[:TAG][=NEWTAG]
                        the image tagged TAG in a docker save tarball (any
                        docker or podman version's, ours, or gzipped; TAG may
                        be omitted when it holds one image), saved as NEWTAG,
                        else TAG, else its first tag there. A tarball in the
                        reference's format keeps its v1 ids.

Options:
  -o, --output FILE     write FILE, atomically: a temporary file flushed to
                        disk and renamed at the end, removed on error, SIGINT
                        or SIGTERM. "-" writes stdout. Without -o, stdout is
                        used when it is not a terminal.
      --format FORMAT   docker (default: the reference's format, byte-exact),
                        oci (an OCI image layout tarball), or docker+oci
                        (both: classic docker load and the containerd store)
      --platform P      os/arch[/variant] to take from multi-platform images
                        (default linux/amd64); or several, kept as one image
                        index per tag (--format oci or docker+oci): all (the
                        index as the source has it, every platform needed),
                        available (the platforms the source holds), or a
                        comma-separated list (attestations dropped). A
                        subset, or uncompressed layers, gives a new index
                        digest; all with --layers compressed keeps it
      --default-platform P
                        the platform of an index that manifest.json names
                        (docker+oci), for classic docker load and podman
                        (default linux/amd64)
      --layers MODE     uncompressed (default; the reference's format: each
                        layer.tar is the layer tar itself) or compressed (each
                        layer.tar is the blob as stored; one pass, no gunzip;
                        docker, podman and skopeo load it)
      --creds HOST=USER:PASS
                        credentials for registry HOST (host[:port], docker.io
                        for Docker Hub); repeatable. --creds USER:PASS when the
                        sources name one registry. Others come from the
                        docker config file, as docker finds them (credHelpers,
                        credsStore, auths)
      --authfile FILE   the docker config file to read (default
                        $DOCKER_CONFIG/config.json, else ~/.docker/config.json)
      --insecure-registry HOST
                        reach HOST (host or host:port) over plain HTTP;
                        repeatable
      --cert-dir DIR    trust the CAs (*.crt) and present the client
                        certificate (*.cert + *.key) in DIR for every registry,
                        reached over HTTPS then, loopback too (default: the
                        certs.d/HOST[:PORT] directory of
                        ~/.config/containers, /etc/containers or /etc/docker)
      --proxy URL       send registry requests through the http:// proxy URL
                        (default: HTTPS_PROXY / HTTP_PROXY; NO_PROXY names
                        hosts reached directly either way)
      --registry-mirror HOST
                        try HOST (host[:port] or http(s)://host[:port]) before
                        Docker Hub for docker.io images, as docker's
                        registry-mirrors; repeatable. A mirror answering 404,
                        5xx or not at all gives way to the next
      --registries-conf FILE
                        the registries.conf whose [[registry]] locations and
                        mirrors apply (default: $CONTAINERS_REGISTRIES_CONF,
                        ~/.config/containers/registries.conf or
                        /etc/containers/registries.conf)
      --allow-foreign-layers
                        fetch foreign (non-distributable) layers from the
                        URLs their manifest gives
      --uncompressed-sizes HOW
                        trailer (default: a layer's size from its gzip
                        trailer, one download per layer; checked while
                        writing) or count (download and gunzip each layer
                        twice, once to count)
      --concurrency N   layers downloaded at once (default 3, as docker);
                        with -o each goes into its place in the file when
                        every size is known, else the next ones are fetched
                        ahead into a buffer of at most 16 MiB
  -q, --quiet           no progress on stderr (errors are still printed)
      --no-verify       skip the sha256 checks of blobs and diff_ids (a
                        corrupt blob then goes into the tarball unnoticed)
  -h, --help            show this help
  -v, --version         print the version

Progress goes to stderr: a live view on a terminal (per-layer bytes, total,
rate, ETA), else one line per layer read.

Exit status: 0 when the whole tarball was written; 130 after SIGINT, 143
after SIGTERM; otherwise 1, with a one-line error on stderr.

Examples:
  docker-save -o alpine.tar alpine:3.20
  docker-save --platform linux/arm64 -o app.tar ghcr.io/org/app:1.2=app:1.2
  docker-save --platform all --format docker+oci --layers compressed \\
    -o app.tar ghcr.io/org/app:1.2
  docker-save -o app.tar oci:./oci:app=registry.example.com/app:v1
  docker-save oci:./layout=app:v1 localhost:5000/tool:2 > both.tar
`;
