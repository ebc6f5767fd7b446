/**
 * Preloaded by the npm scripts (`node --import ./src/shared/env-file.ts …`) before a program's
 * own modules: the variables of ./.env when there is one, under those already set, as
 * `--env-file-if-exists` does, without the notice Node prints on every start when there is none.
 */
import { existsSync } from "node:fs";

if (existsSync(".env")) process.loadEnvFile(".env");
