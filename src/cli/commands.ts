/** The command table. */
import { acmeCommand } from './acme.js';
import { listCommand, revokeCommand, statusCommand } from './admin.js';
import { agentCommand } from './agent.js';
import { auditCommand } from './audit.js';
import { bootstrapCommand } from './bootstrap.js';
import { caCommand } from './ca.js';
import type { Command } from './command.js';
import { configCommand } from './config.js';
import { fleetCommand } from './fleet.js';
import { healthcheckCommand } from './healthcheck.js';
import { initCommand } from './init.js';
import { inspectCommand } from './inspect.js';
import { requestCommand } from './request.js';
import { serveCommand } from './serve.js';
import { tokenCommand } from './token.js';

export const commands: Command[] = [
  serveCommand,
  initCommand,
  configCommand,
  healthcheckCommand,
  tokenCommand,
  requestCommand,
  statusCommand,
  revokeCommand,
  listCommand,
  fleetCommand,
  caCommand,
  inspectCommand,
  auditCommand,
  acmeCommand,
  agentCommand,
  bootstrapCommand,
];
