// Entry point of the runtime bundle shipped in inference images: a small `aiedge` with only `serve`.
import { Command, CommanderError } from 'commander';
import { isAiEdgeError } from '@aiedge/protocol';
import { serveCommand } from './serve-command.js';
import { RUNTIME_VERSION } from './version.js';

const program = new Command('aiedge')
  .description('ai-edge serving runtime (the aiedge serve of inference images)')
  .version(RUNTIME_VERSION)
  .exitOverride()
  .addCommand(serveCommand());
try {
  await program.parseAsync(process.argv.slice(2), { from: 'user' });
} catch (error) {
  if (error instanceof CommanderError) {
    process.exitCode = error.exitCode;
  } else {
    console.error(`aiedge: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = isAiEdgeError(error) && error.status < 500 ? 2 : 1;
  }
}
