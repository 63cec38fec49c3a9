// One full turn against a realtime server with the npm `openai` package's browser-style client
// (OpenAIRealtimeWebSocket: subprotocols `realtime` + `openai-insecure-api-key.<key>`, wss: only).
// Usage: node turn.mjs BASE_URL PCM_FILE   (BASE_URL like https://127.0.0.1:PORT/v1; PCM: 24 kHz s16le mono)
// Prints one JSON line per server event (audio deltas only counted), then a summary line {"summary": ...}.
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { OpenAIRealtimeWebSocket } from 'openai/realtime/websocket';

// The client uses the WHATWG WebSocket global (browsers; Node >= 22, Node 20 with
// --experimental-websocket); older Node gets the same API from the `ws` package.
if (typeof globalThis.WebSocket !== 'function') {
  globalThis.WebSocket = (await import('ws')).WebSocket;
}

const [baseURL, pcmPath] = process.argv.slice(2);
const pcm = readFileSync(pcmPath);
const client = new OpenAI({ apiKey: 'sk-local-test', baseURL });
const rt = new OpenAIRealtimeWebSocket({ model: 'gpt-realtime' }, client);
const print = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
let audioBytes = 0;
let deltas = 0;
let started = false;
const timer = setTimeout(() => { print({ summary: { error: 'timeout' } }); process.exit(3); }, 30000);

rt.on('error', (err) => {
  print({ summary: { error: String(err?.message ?? err) } });
  process.exit(2);
});

rt.on('event', (ev) => {
  if (ev.type === 'response.output_audio.delta') {
    audioBytes += Buffer.from(ev.delta, 'base64').length;
    deltas += 1;
    return;
  }
  print(ev);
  if (ev.type === 'session.created') {
    rt.send({
      type: 'session.update',
      session: {
        type: 'realtime',
        output_modalities: ['audio'],
        audio: { input: { format: { type: 'audio/pcm', rate: 24000 }, turn_detection: null } },
      },
    });
  } else if (ev.type === 'session.updated' && !started) {
    started = true;
    for (let i = 0; i < pcm.length; i += 4800) {
      rt.send({ type: 'input_audio_buffer.append', audio: pcm.subarray(i, i + 4800).toString('base64') });
    }
    rt.send({ type: 'input_audio_buffer.commit' });
    rt.send({ type: 'response.create', response: { metadata: { from: 'node' } } });
  } else if (ev.type === 'response.done') {
    clearTimeout(timer);
    print({ summary: { audioBytes, deltas, subprotocol: rt.socket.protocol, url: rt.url.toString() } });
    rt.close();
  }
});
