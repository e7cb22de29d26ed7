import { test } from "node:test";
import assert from "node:assert/strict";
import { dumpJson, JsonNumber, parseJson } from "../../src/model/json.ts";
import type { JsonValue } from "../../src/model/json.ts";

// Every expected JSON string below came from Python 3.11:
//   python3 -c 'import json; print(json.dumps(json.loads(TEXT), sort_keys=True))'
// so none of them is produced by the code under test.
//
// Inputs with non-ASCII characters are plain string literals with doubled
// backslashes: Bun 1.4 rewrites non-ASCII characters inside String.raw
// templates as \uXXXX escapes, which changes the raw text.

/** Parse then write, the way the expected strings were made in Python. */
function roundTrip(text: string): string {
  return dumpJson(parseJson(text));
}

test("dumpJson() escapes BMP, astral and lone surrogate characters", () => {
  const text =
    '["é", "ü€", "😀", "\\ud83d\\ude00", "\\ud800", "\\udfff x", "\\uFFFF", "a/b", "\\u00e9\\u20AC"]';
  // From Python's json.dumps.
  const expected = String
    .raw`["\u00e9", "\u00fc\u20ac", "\ud83d\ude00", "\ud83d\ude00", "\ud800", "\udfff x", "\uffff", "a/b", "\u00e9\u20ac"]`;
  assert.equal(roundTrip(text), expected);
});

test("dumpJson() escapes control characters, DEL, quote and backslash", () => {
  // From Python's json.dumps.
  assert.equal(
    roundTrip(String.raw`"\u0000\u0001\u001f\u007f\b\f\n\r\t\"\\ ~"`),
    String.raw`"\u0000\u0001\u001f\u007f\b\f\n\r\t\"\\ ~"`,
  );
  // Raw DEL and U+0080 are allowed inside JSON strings; from Python's json.dumps.
  assert.equal(roundTrip('"a\x7fb\u0080"'), String.raw`"a\u007fb\u0080"`);
  // A JS string with raw control, astral and lone surrogate characters;
  // from Python's json.dumps("\x00\x1f\x7f\x80\u2028\U0001F600\ud800").
  assert.equal(
    dumpJson("\x00\x1f\x7f\x80\u2028\u{1F600}\ud800"),
    String.raw`"\u0000\u001f\u007f\u0080\u2028\ud83d\ude00\ud800"`,
  );
});

test("dumpJson() writes nested and empty containers", () => {
  const text =
    ' { "a" : [ { "b" : { "c" : [ [ ] , { } , [ [ 1 ] ] ] } } ] , "d" : { } , "e" : [ ] }\r\n\t';
  // From Python's json.dumps.
  assert.equal(
    roundTrip(text),
    '{"a": [{"b": {"c": [[], {}, [[1]]]}}], "d": {}, "e": []}',
  );
  // From Python's json.dumps.
  assert.equal(
    roundTrip(' [true, false, null, "", [], {}] '),
    '[true, false, null, "", [], {}]',
  );
  assert.equal(roundTrip(" \t\n\r[ 1 ,\n2 ]\r\n "), "[1, 2]");
});

test("dumpJson() sorts keys by code point", () => {
  const text =
    '{"b":1,"a":2,"B":3,"":4,"aa":5,"é":6,"\\uffff":7,"😀":8,"\\ue000":9,"𐀀":10,"\\ud800":11,"\\udc00":12,"\\ud800\\udc00x":13,"\\ud7ff":14,"ab":15,"a\\u0000":16}';
  // From Python's json.dumps: astral keys sort after U+FFFF, lone surrogates
  // by their own value.
  const expected = String
    .raw`{"": 4, "B": 3, "a": 2, "a\u0000": 16, "aa": 5, "ab": 15, "b": 1, "\u00e9": 6, "\ud7ff": 14, "\ud800": 11, "\udc00": 12, "\ue000": 9, "\uffff": 7, "\ud800\udc00": 10, "\ud800\udc00x": 13, "\ud83d\ude00": 8}`;
  assert.equal(roundTrip(text), expected);
});

test("dumpJson() sorts keys at every depth", () => {
  const text = '{"z":{"y":[{"b":1,"a":2}],"x":{"\\uffff":1,"😀":2}},"a":null}';
  // From Python's json.dumps.
  const expected = String
    .raw`{"a": null, "z": {"x": {"\uffff": 1, "\ud83d\ude00": 2}, "y": [{"a": 2, "b": 1}]}}`;
  assert.equal(roundTrip(text), expected);
  // Plain JS objects work too; from Python's json.dumps.
  const plain = JSON.parse(
    '{"b": {"d": 1, "c": 2}, "a": [1, "x"], "__proto__": null}',
  );
  assert.equal(
    dumpJson(plain),
    '{"__proto__": null, "a": [1, "x"], "b": {"c": 2, "d": 1}}',
  );
});

test("parseJson() keeps big integers exact", () => {
  const text =
    "[12345678901234567890, -12345678901234567890, 123456789012345678901234567890, -0, 0, 9007199254740993, -1]";
  // From Python's json.dumps.
  assert.equal(
    roundTrip(text),
    "[12345678901234567890, -12345678901234567890, 123456789012345678901234567890, 0, 0, 9007199254740993, -1]",
  );
});

test("dumpJson() writes floats like Python's repr()", () => {
  const text =
    "[1.0, 1e3, 1E3, 1e15, 9999999999999998.0, 1e16, 1.5e16, 123456789012345678.0, 0.001, 1e-4, 0.0001, 1e-5, 1e-05, 0.00001234, -0.0, 0.0, 1.5e300, -1.5e300, 1e308, 5e-324, 0.1, 1e-7, 2.5, 1e22, 1.7976931348623157e308, 12345.6789e-3, 100.0e-2, 0.30000000000000004, 1e+2, 1E-2, 123.456, -1.25e-10]";
  // From Python's json.dumps.
  const expected =
    "[1.0, 1000.0, 1000.0, 1000000000000000.0, 9999999999999998.0, 1e+16, 1.5e+16, 1.2345678901234568e+17, 0.001, 0.0001, 0.0001, 1e-05, 1e-05, 1.234e-05, -0.0, 0.0, 1.5e+300, -1.5e+300, 1e+308, 5e-324, 0.1, 1e-07, 2.5, 1e+22, 1.7976931348623157e+308, 12.3456789, 1.0, 0.30000000000000004, 100.0, 0.01, 123.456, -1.25e-10]";
  assert.equal(roundTrip(text), expected);
});

test("parseJson() and dumpJson() handle NaN, Infinity and overflow", () => {
  // From Python's json.dumps.
  assert.equal(
    roundTrip("[NaN, Infinity, -Infinity, 1e400, -1e400, 1e-400, -1e-400]"),
    "[NaN, Infinity, -Infinity, Infinity, -Infinity, 0.0, -0.0]",
  );
});

test("dumpJson() writes plain JS integers as ints and others as floats", () => {
  const value = [
    0,
    -0,
    1,
    -1,
    1.5,
    0.1,
    1e21,
    2 ** 53,
    1e-7,
    1e16,
    1e-5,
    123.456,
    NaN,
    Infinity,
    -Infinity,
  ];
  // From Python's json.dumps([0, 0, 1, -1, 1.5, 0.1, 10**21, 2**53, 1e-7,
  // 10**16, 1e-5, 123.456, nan, inf, -inf]).
  assert.equal(
    dumpJson(value),
    "[0, 0, 1, -1, 1.5, 0.1, 1000000000000000000000, 9007199254740992, 1e-07, 10000000000000000, 1e-05, 123.456, NaN, Infinity, -Infinity]",
  );
});

test("parseJson() returns JsonNumbers that remember int or float", () => {
  const cases: [string, boolean][] = [
    ["0", false],
    ["-0", false],
    ["12345678901234567890", false],
    ["1.0", true],
    ["1e3", true],
    ["1E3", true],
    ["-0.0", true],
    ["NaN", true],
    ["Infinity", true],
    ["-Infinity", true],
  ];
  for (const [text, isFloat] of cases) {
    const value = parseJson(text);
    assert.ok(value instanceof JsonNumber, text);
    assert.equal(value.text, text);
    assert.equal(value.isFloat, isFloat, text);
  }
  assert.throws(() => new JsonNumber("1."), TypeError);
  assert.throws(() => new JsonNumber("nan"), TypeError);
});

test("parseJson() stores __proto__ as an ordinary key", () => {
  const value = parseJson(
    '{"__proto__": {"x": 1}, "a": 1, "constructor": 2}',
  ) as Record<string, JsonValue>;
  assert.equal(Object.getPrototypeOf(value), null);
  assert.ok(Object.hasOwn(value, "__proto__"));
  assert.equal(Object.getPrototypeOf(value["__proto__"]), null);
  assert.deepEqual(Object.keys(value), ["__proto__", "a", "constructor"]);
  // From Python's json.dumps.
  assert.equal(
    dumpJson(value),
    '{"__proto__": {"x": 1}, "a": 1, "constructor": 2}',
  );
});

test("parseJson() keeps the last value of a duplicate key", () => {
  // From Python's json.dumps.
  assert.equal(
    roundTrip('{"a": 1, "b": 2, "a": 3, "__proto__": 1, "__proto__": [2]}'),
    '{"__proto__": [2], "a": 3, "b": 2}',
  );
});

test("parseJson() rejects what Python's json.loads rejects", () => {
  // Each input with the char offset from Python's JSONDecodeError message.
  const cases: [string, number][] = [
    ["", 0],
    [" ", 1],
    ["[1,]", 3],
    ['{"a":1,}', 7],
    ["[1 2]", 3],
    ["{'a':1}", 1],
    ['{"a" 1}', 5],
    ["{1:2}", 1],
    ['"\x00"', 1],
    ['"a\nb"', 2],
    ['"\x1f"', 1],
    [String.raw`"\x"`, 1],
    [String.raw`"\u12"`, 2],
    [String.raw`"\u12G4"`, 2],
    [String.raw`"\U0041"`, 1],
    ["01", 1],
    ["1.", 1],
    [".5", 0],
    ["+1", 0],
    ["-", 0],
    ["1e", 1],
    ["1e+", 1],
    ["nan", 0],
    ["inf", 0],
    ["-NaN", 0],
    ["tru", 0],
    ["[1] x", 4],
    ["\ufeff[]", 0],
    ['"abc', 0],
    ["[", 1],
    ["{", 1],
    ["1 2", 2],
    ["[1,2", 4],
    ["\u00a01", 0],
    ["Infinity1", 8],
    ["[-]", 1],
    ["0x10", 1],
    ["1.e5", 1],
    ["--1", 0],
    ["'a'", 0],
    ["/* */1", 0],
    ["[,]", 1],
    ["{,}", 1],
    ['{"a":}', 5],
    ["[1,,2]", 3],
  ];
  for (const [text, position] of cases) {
    assert.throws(() => parseJson(text), (error: unknown) => {
      assert.ok(error instanceof Error, JSON.stringify(text));
      assert.equal(error.name, "DockerSaveError", JSON.stringify(text));
      assert.equal((error as { code?: string }).code, "BAD_CONFIG");
      assert.match(
        error.message,
        new RegExp(`^Cannot parse JSON: .+ at position ${position}$`),
        JSON.stringify(text),
      );
      return true;
    });
  }
});

test("parseJson() error messages name the reason", () => {
  assert.throws(() => parseJson("[1,]"), {
    name: "DockerSaveError",
    code: "BAD_CONFIG",
    message: "Cannot parse JSON: Expecting value at position 3",
  });
  assert.throws(() => parseJson('{"a" 1}'), {
    name: "DockerSaveError",
    code: "BAD_CONFIG",
    message: "Cannot parse JSON: Expecting ':' delimiter at position 5",
  });
  assert.throws(() => parseJson("[1] x"), {
    name: "DockerSaveError",
    code: "BAD_CONFIG",
    message: "Cannot parse JSON: Extra data at position 4",
  });
});

test("parseJson() rejects very deep nesting but accepts 500 levels", () => {
  // Python's json.loads raises RecursionError here.
  assert.throws(() => parseJson("[".repeat(100_000)), {
    name: "DockerSaveError",
    code: "BAD_CONFIG",
  });
  assert.throws(() => parseJson('{"a":'.repeat(100_000)), {
    name: "DockerSaveError",
    code: "BAD_CONFIG",
  });
  // Python's json.dumps gives back the input text here.
  const deep = "[".repeat(500) + "]".repeat(500);
  assert.equal(roundTrip(deep), deep);
});

test("parseJson() handles large inputs in linear time", () => {
  // Quadratic string or array building would take minutes at this size.
  const count = 200_000;
  const longString = `"${String.raw`\n\u00e9x`.repeat(count)}"`;
  assert.equal((parseJson(longString) as string).length, count * 3);
  const bigArray = `[${"1.5,".repeat(count)}0]`;
  assert.equal((parseJson(bigArray) as unknown[]).length, count + 1);
  const keys = Array.from({ length: count }, (_, i) => `"k${i}":${i}`);
  const bigObject = parseJson(`{${keys.join(",")}}`);
  assert.equal(Object.keys(bigObject as object).length, count);
  assert.ok(dumpJson(bigObject).startsWith('{"k0": 0, "k1": 1, "k10": 10'));
});

test("dumpJson() round-trips an image config like Python", () => {
  const text =
    '{"architecture":"amd64","config":{"Env":["PATH=/usr/local/sbin:/usr/bin"],"Cmd":["/bin/sh"],"Labels":{"é":"ü","😀":"x","\\uffff":"y"}},"created":"2024-01-01T00:01:00Z","n":[1,1.0,1e3,-0,0.1,1e-7,123456789012345678901234567890]}';
  // From Python's json.dumps(json.loads(text), sort_keys=True).
  const expected = String
    .raw`{"architecture": "amd64", "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/usr/local/sbin:/usr/bin"], "Labels": {"\u00e9": "\u00fc", "\uffff": "y", "\ud83d\ude00": "x"}}, "created": "2024-01-01T00:01:00Z", "n": [1, 1.0, 1000.0, 0, 0.1, 1e-07, 123456789012345678901234567890]}`;
  assert.equal(roundTrip(text), expected);
});
