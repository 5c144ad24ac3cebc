// The aiedge command run from TypeScript sources, for tests (the installed bin runs dist/).
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
