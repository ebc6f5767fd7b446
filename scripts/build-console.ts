import { buildConsole } from "../console/build.ts";
import { parseCommandLine } from "../src/shared/command-line.ts";

parseCommandLine(
  `usage: npm run build:console
Builds the web console (console/) with Vite into console/dist/, which the API serves on /.
Runs during npm ci (postinstall); run it again after changing console/.`,
  {},
);
if (await buildConsole()) process.stdout.write("console built into console/dist/\n");
else process.stdout.write("console sources absent: not built\n");
