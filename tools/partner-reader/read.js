// Print every message of the given topics, from the beginning to each partition's end as it is
// when the reader starts, one JSON object per line: {"topic", "partition", "offset", "key",
// "payload"}. Usage: node read.js <host:port> <topic> [<topic> ...]
//
// A partner's view of our streams, with a client that shares no code with ours (kafkajs, pure
// JavaScript). The tests use it where kcat cannot go: Debian's kcat (librdkafka 2.0) cannot
// parse the embedded development broker's ApiVersions answer; against Apache Kafka kcat works.
//
// All topics are read by one consumer in one group: joining a group is the slow part of a read
// (a rebalance), so one join serves every topic instead of one per topic.
const { Kafka, logLevel } = require('kafkajs');

const [broker, ...topics] = process.argv.slice(2);
if (!broker || topics.length === 0) {
  console.error('usage: node read.js <host:port> <topic> [<topic> ...]');
  process.exit(2);
}

(async () => {
  const kafka = new Kafka({ clientId: 'wangban-partner-reader', brokers: [broker], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  // Read up to the end as it is now, partition by partition.
  const ends = new Map();
  for (const topic of topics) {
    for (const o of await admin.fetchTopicOffsets(topic)) {
      if (Number(o.high) > Number(o.low)) ends.set(`${topic}/${o.partition}`, Number(o.high));
    }
  }
  await admin.disconnect();
  if (ends.size === 0) return;
  const consumer = kafka.consumer({
    groupId: `wangban-partner-reader-${process.pid}-${Date.now()}`,
    // A partition at its end answers a fetch only after this wait: short, since the reader
    // stops at the ends it measured anyway.
    maxWaitTimeInMs: 100,
    // The reader is the group's only member: a short rebalance timeout lets the join finish as
    // soon as the broker's initial delay (3 s) is over, instead of kafkajs' 60 s allowance.
    rebalanceTimeout: 1000,
    sessionTimeout: 6000,
    heartbeatInterval: 500,
  });
  await consumer.connect();
  for (const topic of topics) {
    if ([...ends.keys()].some((k) => k.startsWith(`${topic}/`))) {
      await consumer.subscribe({ topic, fromBeginning: true });
    }
  }
  await new Promise((resolve) => {
    consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        process.stdout.write(
          JSON.stringify({
            topic,
            partition,
            offset: Number(message.offset),
            key: message.key === null ? null : message.key.toString('utf8'),
            payload: message.value === null ? null : message.value.toString('utf8'),
          }) + '\n',
        );
        const where = `${topic}/${partition}`;
        if (ends.has(where) && Number(message.offset) + 1 >= ends.get(where)) {
          ends.delete(where);
          if (ends.size === 0) resolve();
        }
      },
    });
  });
  await consumer.disconnect();
})().catch((error) => {
  console.error(`reading ${topics.join(', ')} failed: ${error.message}`);
  process.exit(1);
});
