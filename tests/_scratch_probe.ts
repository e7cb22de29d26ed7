import {
  Cleanup,
  pushLayout,
  startRegistry,
  startTokenServer,
  TOOLS,
} from "./_registry.ts";
const c = new Cleanup();
try {
  console.log(TOOLS);
  const r = await startRegistry(c);
  console.log("anon", r.host, r.pid);
  console.log(
    await pushLayout(
      "tests/testdata/basic/oci",
      "basic",
      r.url,
      "oracle/basic",
      "v1",
    ),
  );
  let res = await fetch(`${r.url}/v2/oracle/basic/manifests/v1`, {
    headers: { accept: "application/vnd.docker.distribution.manifest.v2+json" },
  });
  console.log(
    res.status,
    res.headers.get("docker-content-digest"),
    res.headers.get("content-type"),
  );
  await res.text();
  const b = await startRegistry(c, {
    htpasswd: { username: "u", password: "p" },
  });
  res = await fetch(`${b.url}/v2/`);
  console.log("basic", res.status, res.headers.get("www-authenticate"));
  await res.text();
  console.log(
    await pushLayout(
      "tests/testdata/basic/oci",
      "basic",
      b.url,
      "oracle/basic",
      "v1",
      { authorization: "Basic " + btoa("u:p") },
    ),
  );
  const ts = await startTokenServer(c, { username: "u", password: "p" });
  const t = await startRegistry(c, { token: ts });
  res = await fetch(`${t.url}/v2/oracle/basic/manifests/v1`);
  console.log("token", res.status, res.headers.get("www-authenticate"));
  await res.text();
  const tok = await (await fetch(
    `${ts.realm}?service=${ts.service}&scope=repository:oracle/basic:pull,push`,
    { headers: { authorization: "Basic " + btoa("u:p") } },
  )).json();
  console.log(
    await pushLayout(
      "tests/testdata/basic/oci",
      "basic",
      t.url,
      "oracle/basic",
      "v1",
      { authorization: "Bearer " + tok.token },
    ),
  );
  res = await fetch(`${t.url}/v2/oracle/basic/manifests/v1`, {
    headers: {
      authorization: "Bearer " + tok.token,
      accept: "application/vnd.docker.distribution.manifest.v2+json",
    },
  });
  console.log("token get", res.status);
  await res.text();
  console.log(ts.requests, t.log());
} finally {
  await c.close();
}
