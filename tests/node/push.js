// Pushes with prom-client's Pushgateway, as a Node batch job would:
//   node push.js URL push    pushAdd (POST), then push (PUT), then a gzipped push
//   node push.js URL delete  delete the groups again
// Groupings hold a value with '/', which prom-client sends as %2F.
'use strict';
const client = require('prom-client');

const [url, mode] = process.argv.slice(2);
const registry = new client.Registry();
const jobs = new client.Counter({
  name: 'node_jobs_total',
  help: 'Jobs run.',
  labelNames: ['kind'],
  registers: [registry],
});
const last = new client.Gauge({
  name: 'node_last_success_unixtime',
  help: 'Last success.',
  registers: [registry],
});
const plain = new client.Pushgateway(url, {}, registry);
const gzipped = new client.Pushgateway(
  url,
  { headers: { 'Content-Encoding': 'gzip' } },
  registry,
);
const group = { jobName: 'nodejob', groupings: { instance: 'a/b' } };
const gzGroup = { jobName: 'nodejob', groupings: { instance: 'gz' } };

async function main() {
  if (mode === 'push') {
    jobs.inc({ kind: 'nightly' }, 2);
    last.set(1700000000);
    await plain.pushAdd(group);
    jobs.inc({ kind: 'nightly' }, 1);
    await plain.push(group);
    await gzipped.push(gzGroup);
  } else if (mode === 'delete') {
    await plain.delete(group);
    await gzipped.delete(gzGroup);
  } else {
    throw new Error(`unknown mode ${mode}`);
  }
  console.log('ok');
}

main().catch((e) => {
  console.error(e.message);
  process.exit(1);
});
