import { afterAll } from "vitest";
import { removeFixturesDir } from "./media-fixtures.ts";

/**
 * A setup file (vitest.config.ts): removes each test file's own media dir (`fixturesDir`) once the
 * file's own `afterAll`s have stopped what used it. Setup files run for every file, also in a process
 * that files share; the hook media-fixtures.ts registered on its import was not run for every file.
 */
afterAll(removeFixturesDir);
