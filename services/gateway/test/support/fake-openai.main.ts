// Runs the fake OpenAI backend as its own process, for the bench:
// `fake-openai.main.ts <port> [chunks] [chunkIntervalMs]`.
import { FakeOpenAI } from './fake-openai.js';

const [port, chunks, chunkIntervalMs] = process.argv.slice(2);
await FakeOpenAI.start({ chunks: Number(chunks ?? 3), chunkIntervalMs: Number(chunkIntervalMs ?? 0) }, Number(port));
process.stdout.write(`fake OpenAI backend listening on ${port}\n`);
