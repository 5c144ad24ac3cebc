import { Command, CommanderError } from 'commander';

/** Version of the aiedge command, from its package.json. */
export const CLI_VERSION = '0.1.0';

/** Builds the `aiedge` command tree. */
export function buildProgram(): Command {
  const program = new Command('aiedge')
    .description('ai-edge: deliver machine learning models to near-edge sites')
    .version(CLI_VERSION)
    .showHelpAfterError()
    .exitOverride();
  return program;
}

/** Runs the CLI with `argv` (without node and script) and resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode;
    throw error;
  }
}
