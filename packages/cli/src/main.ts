import { Command, CommanderError } from 'commander';
import { isAiEdgeError } from '@aiedge/protocol';
import { serveCommand } from '@aiedge/runtime';
import { agentCommand } from './agent-command.js';
import { coreCommand } from './core-command.js';
import { gitopsCommand } from './gitops-command.js';
import { imageCommand } from './image-command.js';
import { modelCommand } from './model-command.js';
import { pipelineCommand } from './pipeline-command.js';
import { quickstartCommand } from './quickstart-command.js';
import { registryCommand } from './registry-command.js';

/** Version of the aiedge command, from its package.json. */
export const CLI_VERSION = '0.1.0';

/** Builds the `aiedge` command tree. */
export function buildProgram(): Command {
  const program = new Command('aiedge')
    .description('ai-edge: deliver machine learning models to near-edge sites')
    .version(CLI_VERSION)
    .showHelpAfterError()
    // Program options only before the verb, so verbs may have their own --version (a model version).
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(text) });
  program.addCommand(serveCommand());
  program.addCommand(modelCommand());
  program.addCommand(registryCommand());
  program.addCommand(imageCommand());
  program.addCommand(gitopsCommand());
  program.addCommand(pipelineCommand());
  program.addCommand(coreCommand());
  program.addCommand(agentCommand());
  program.addCommand(quickstartCommand());
  program.addHelpText(
    'after',
    `
Examples:
  $ aiedge model example --out ./models
  $ aiedge serve --model-repository ./models
  $ aiedge serve --help`,
  );
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
    if (isAiEdgeError(error) && error.status < 500) {
      console.error(`aiedge: ${error.message}`);
      return 2;
    }
    // An unreachable service is reported by its message; stack traces are for bugs.
    if (isAiEdgeError(error) && error.status === 503) {
      console.error(`aiedge: ${error.message}`);
      return 1;
    }
    console.error(`aiedge: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    return 1;
  }
}
