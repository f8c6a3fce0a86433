// Calls one method of inference.GRPCInferenceService with @grpc/grpc-js, loading the gateway's .proto at run time.
// Usage: node call.mjs PROTO ADDRESS METHOD REQUEST_JSON|- [METADATA_JSON]   (-: the request JSON on stdin)
// Bytes fields are base64 in the request and the answer. Prints {"ok": response} or {"code", "details"}.
import grpc from "@grpc/grpc-js";
import loader from "@grpc/proto-loader";
import { readFileSync } from "node:fs";

const [proto, address, method, request, metadata] = process.argv.slice(2);
const definition = loader.loadSync(proto, { keepCase: true, longs: Number, bytes: String, defaults: false, oneofs: true });
const Service = grpc.loadPackageDefinition(definition).inference.GRPCInferenceService;
const client = new Service(address, grpc.credentials.createInsecure(), {
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  "grpc.max_send_message_length": 128 * 1024 * 1024,
});
const meta = new grpc.Metadata();
for (const [k, v] of Object.entries(JSON.parse(metadata ?? "{}"))) meta.add(k, v);
client[method](JSON.parse(request === "-" ? readFileSync(0, "utf8") : request), meta, { deadline: Date.now() + 60000 }, (error, response) => {
  console.log(JSON.stringify(error ? { code: grpc.status[error.code], details: error.details } : { ok: response }));
  client.close();
});
