// The protocol runs in Node and in the browser; it may use only what both provide.
// tsconfig gives the whole project DOM and Node types, so these are declared for documentation;
// test/protocol-neutral.test.ts checks that no file here imports a runtime-specific module.
export {};
