#!/usr/bin/env node
// The installed `aiedge` command: runs the compiled CLI (built by `npm ci` through the root `prepare`).
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2));
