/** The command table. */
import type { Command } from './command.js';
import { initCommand } from './init.js';
import { requestCommand } from './request.js';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';

export const commands: Command[] = [serveCommand, initCommand, tokenCommand, requestCommand];
