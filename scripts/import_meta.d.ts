// For tsc only (Deno and Bun declare it): `import.meta.main`, which Node 20's
// types lack. src/cli.ts reads it and falls back when it is undefined.
declare global {
  interface ImportMeta {
    /** Whether this module is the program's entry point, where known. */
    main?: boolean;
  }
}

export {};
