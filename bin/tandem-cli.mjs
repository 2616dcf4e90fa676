#!/usr/bin/env node
// The `tandem` bin: registers tsx's loader (the sources are TypeScript, run as they are), then runs the CLI.
import { register } from 'tsx/esm/api';

register();
await import('./cli.ts');
