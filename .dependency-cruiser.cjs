// Import rules `npm run lint` checks (dependency-cruiser): no import circles, type-only ones
// included, and the layers docs/development.md describes. A rule's comment is what a failure prints.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      severity: "error",
      comment: "An import circle (type-only imports count): move what both sides need into a module both import.",
      from: {},
      to: { circular: true },
    },
    {
      name: "contract-imports-only-itself",
      severity: "error",
      comment: "src/protocol/ is the wire contract: it imports only itself and npm packages.",
      from: { path: "^src/protocol/" },
      to: { path: "^(src|render-worker|scripts|console)/", pathNot: "^src/protocol/" },
    },
    {
      name: "shared-imports-only-contract",
      severity: "error",
      comment: "src/shared/ is code both programs use: it imports only the contract and itself.",
      from: { path: "^src/shared/" },
      to: { path: "^(src|render-worker|scripts|console)/", pathNot: "^src/(protocol|shared)/" },
    },
    {
      name: "worker-imports-only-contract-and-shared",
      severity: "error",
      comment: "The worker is its own program: from src/ it imports only src/protocol/ and src/shared/.",
      from: { path: "^render-worker/" },
      to: { path: "^src/", pathNot: "^src/(protocol|shared)/" },
    },
    {
      name: "api-does-not-import-worker",
      severity: "error",
      comment: "The API talks to workers through the contract, never by importing their code.",
      from: { path: "^src/" },
      to: { path: "^render-worker/" },
    },
    {
      name: "storage-below-http",
      severity: "error",
      comment: "The API's storage adapters sit below HTTP and uploads.",
      from: { path: "^src/storage/" },
      to: { path: "^src/(http|uploads)/" },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^src/generated/" },
    // Type-only imports are edges too: a type-level circle is a circle.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { extensions: [".ts", ".tsx", ".js", ".mjs"] },
  },
};
