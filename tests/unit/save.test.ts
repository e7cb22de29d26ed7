import { test } from "node:test";
import assert from "node:assert/strict";
import { save } from "../../mod.ts";
import { readAll } from "../_kit/bytes.ts";
import { goldenCases, goldenEntries } from "../_kit/golden.ts";

for (const golden of goldenCases()) {
  test(`save() writes the golden tarball of "${golden.name}" byte for byte`, async () => {
    const out = await readAll(save(await goldenEntries(golden)));
    assert.equal(out.byteLength, golden.expected.byteLength);
    assert.ok(
      Buffer.from(out).equals(Buffer.from(golden.expected)),
      "bytes differ",
    );
  });
}
