// Print every message of one topic, from the beginning to the current end, one JSON object per
// line: {"partition", "offset", "key", "payload"}. Usage: node read.js <host:port> <topic>
//
// A partner's view of our streams, with a client that shares no code with ours (kafkajs, pure
// JavaScript). The tests use it where kcat cannot go: Debian's kcat (librdkafka 2.0) cannot
// parse the embedded development broker's ApiVersions answer; against Apache Kafka kcat works.
const { Kafka, logLevel } = require('kafkajs');

const [broker, topic] = process.argv.slice(2);
if (!broker || !topic) {
  console.error('usage: node read.js <host:port> <topic>');
  process.exit(2);
}

(async () => {
  const kafka = new Kafka({ clientId: 'wangban-partner-reader', brokers: [broker], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  // Read up to the end as it is now, partition by partition.
  const ends = new Map(
    offsets.filter((o) => Number(o.high) > Number(o.low)).map((o) => [o.partition, Number(o.high)]),
  );
  if (ends.size === 0) return;
  const consumer = kafka.consumer({ groupId: `wangban-partner-reader-${process.pid}-${Date.now()}` });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ partition, message }) => {
        process.stdout.write(
          JSON.stringify({
            partition,
            offset: Number(message.offset),
            key: message.key === null ? null : message.key.toString('utf8'),
            payload: message.value === null ? null : message.value.toString('utf8'),
          }) + '\n',
        );
        if (Number(message.offset) + 1 >= ends.get(partition)) {
          ends.delete(partition);
          if (ends.size === 0) resolve();
        }
      },
    });
  });
  await consumer.disconnect();
})().catch((error) => {
  console.error(`reading ${topic} failed: ${error.message}`);
  process.exit(1);
});
