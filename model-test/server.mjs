// A small OpenAI-compatible chat server for the mediator's real-model test:
// `POST /v1/chat/completions` answered by a local GGUF model through
// node-llama-cpp, its output held to the request's JSON schema by a grammar.
// Listens on 127.0.0.1 only and writes its port to PORT_FILE when ready.
//
//   node server.mjs MODEL.gguf PORT_FILE
import http from "node:http";
import fs from "node:fs";
import {getLlama, LlamaChatSession} from "node-llama-cpp";

const [modelPath, portFile] = process.argv.slice(2);
const llama = await getLlama({gpu: false, logLevel: "warn"});
const model = await llama.loadModel({modelPath});
const context = await model.createContext({contextSize: 4096, threads: 2});

// One request at a time: the context has one sequence.
let queue = Promise.resolve();
function serial(job) {
    const run = queue.then(job, job);
    queue = run.catch(() => {});
    return run;
}

async function complete(body) {
    const messages = body.messages ?? [];
    const system = messages.filter((m) => m.role === "system").map((m) => m.content).join("\n");
    const user = messages.filter((m) => m.role === "user").map((m) => m.content).join("\n");
    const schema = body.response_format?.json_schema?.schema;
    const grammar = schema ? await llama.createGrammarForJsonSchema(schema) : undefined;
    const sequence = context.getSequence();
    try {
        const session = new LlamaChatSession({contextSequence: sequence, systemPrompt: system});
        return await session.prompt(user, {
            grammar,
            maxTokens: 600,
            temperature: 0,
            // The penalty keeps a small model from looping, but JSON's own
            // punctuation and whitespace repeat by nature: punished, they
            // pushed the opening quote of every string after the first down
            // (every title came out "").
            repeatPenalty: {penalty: 1.5, frequencyPenalty: 0.5, punishTokensFilter: words, penalizeNewLine: false},
        });
    } finally {
        // Awaited: a request right after another found no free sequence
        // ("No sequences left") while this one was still being disposed.
        await sequence.dispose();
    }
}

// Tokens that are only JSON punctuation or whitespace are not punished.
const neutral = new Map();
function words(tokens) {
    return tokens.filter((t) => {
        let n = neutral.get(t);
        if (n === undefined) {
            n = /^[\s{}\[\]":,]*$/.test(model.detokenize([t]));
            neutral.set(t, n);
        }
        return !n;
    });
}

const server = http.createServer((req, res) => {
    let data = "";
    req.on("data", (c) => (data += c));
    req.on("end", async () => {
        const reply = (status, obj) => {
            res.writeHead(status, {"content-type": "application/json"});
            res.end(JSON.stringify(obj));
        };
        if (req.method === "GET") {
            return reply(200, {object: "list", data: [{id: "smollm2-135m", object: "model"}]});
        }
        try {
            const body = JSON.parse(data || "{}");
            const content = await serial(() => complete(body));
            reply(200, {choices: [{index: 0, message: {role: "assistant", content}, finish_reason: "stop"}]});
        } catch (e) {
            reply(500, {error: {message: String(e)}});
        }
    });
});
server.listen(0, "127.0.0.1", () => {
    fs.writeFileSync(portFile, String(server.address().port));
});
