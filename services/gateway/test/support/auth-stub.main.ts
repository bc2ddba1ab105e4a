// Runs the auth stub (in-memory counting, no Redis) as its own process, for the bench row that
// shows the gateway's own cost apart from the auth service's: `auth-stub.main.ts <port> <key>`.
import { AuthStub } from './auth-stub.js';

const [port, secret] = process.argv.slice(2);
await AuthStub.start({ keys: [{ id: 'bench', secret: secret!, rpm: 1_000_000_000 }] }, Number(port));
process.stdout.write(`auth stub listening on ${port}\n`);
