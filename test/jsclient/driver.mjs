// driver.mjs runs real pusher-js clients (the Node build) for Fizz's Go
// tests. It reads one JSON command a line on stdin and writes what the
// clients see as one JSON object a line on stdout:
//
//   {"op":"connect","id":"w","host":"127.0.0.1","port":8080,"key":"k","secret":"s",
//    "user":{"id":"w","watchlist":["a"]},"signin":true,"subscribe":["c"],"signin_after_subscribe":false}
//   {"op":"signin","id":"w"}            {"op":"subscribe","id":"w","channel":"c"}
//   {"op":"unsubscribe","id":"w","channel":"c"}   {"op":"disconnect","id":"w"}
//
// Every output line has id (the client), type and t (ms since the epoch).
// Types: ready, ack, state, error, message (every frame pusher-js decoded),
// watchlist (pusher.user.watchlist online/offline), user_event (events
// sent to the user), subscribed, subscription_error, count
// (pusher:subscription_count and channel.subscriptionCount) and event.
//
// Signatures are made here with the app secret, as a backend would make
// them: user auth HMAC-SHA256(secret, socket_id + "::user::" + user_data),
// channel auth HMAC-SHA256(secret, socket_id + ":" + channel[":" + channel_data]).
// The process ends when stdin closes, and after argv[2] ms (default 60 s)
// whatever happens.
import { createHmac } from 'node:crypto';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';

const require = createRequire(import.meta.url);
const PusherModule = require('pusher-js');
const Pusher = PusherModule.default || PusherModule;

const lifetime = Number(process.argv[2] || 60000);
setTimeout(() => {
  emit('', 'fatal', { error: `driver still running after ${lifetime} ms` });
  process.exit(3);
}, lifetime).unref();

function emit(id, type, fields) {
  process.stdout.write(JSON.stringify({ id, type, t: Date.now(), ...fields }) + '\n');
}

function sign(secret, text) {
  return createHmac('sha256', secret).update(text).digest('hex');
}

// errorCode digs the Pusher error code out of what pusher-js reports.
function errorCode(err) {
  return err?.data?.code ?? err?.error?.data?.code ?? null;
}

Pusher.log = (msg) => process.stderr.write(`pusher-js: ${msg}\n`);

const clients = new Map();

function bindChannel(id, client, name, channel) {
  if (client.bound.has(name)) return;
  client.bound.add(name);
  channel.bind('pusher:subscription_succeeded', () => emit(id, 'subscribed', { channel: name }));
  channel.bind('pusher:subscription_error', (e) => emit(id, 'subscription_error', { channel: name, error: JSON.stringify(e) }));
  channel.bind('pusher:subscription_count', (data) =>
    emit(id, 'count', { channel: name, count: data.subscription_count, property: channel.subscriptionCount ?? null }),
  );
  channel.bind_global((event, data) => {
    if (!event.startsWith('pusher:') && !event.startsWith('pusher_internal:')) {
      emit(id, 'event', { channel: name, event, data });
    }
  });
}

function subscribe(id, client, name) {
  bindChannel(id, client, name, client.pusher.subscribe(name));
}

function connect(cmd) {
  const { id, key, secret } = cmd;
  const userData = cmd.user ? JSON.stringify(cmd.user) : null;
  const pusher = new Pusher(key, {
    cluster: 'mt1',
    wsHost: cmd.host,
    wsPort: cmd.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    enableStats: false,
    userAuthentication: {
      customHandler: ({ socketId }, callback) => {
        if (userData === null) {
          callback(new Error('no user'), null);
          return;
        }
        callback(null, { auth: `${key}:${sign(secret, `${socketId}::user::${userData}`)}`, user_data: userData });
      },
    },
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        if (channelName.startsWith('presence-')) {
          const channelData = JSON.stringify({ user_id: cmd.presence_id || id, user_info: { name: id } });
          callback(null, {
            auth: `${key}:${sign(secret, `${socketId}:${channelName}:${channelData}`)}`,
            channel_data: channelData,
          });
          return;
        }
        callback(null, { auth: `${key}:${sign(secret, `${socketId}:${channelName}`)}` });
      },
    },
  });
  const client = { pusher, bound: new Set() };
  clients.set(id, client);
  pusher.connection.bind('state_change', ({ previous, current }) =>
    emit(id, 'state', { previous, current, socket_id: pusher.connection.socket_id ?? null }),
  );
  pusher.connection.bind('error', (err) =>
    emit(id, 'error', { code: errorCode(err), error: JSON.stringify(err) }),
  );
  pusher.connection.bind('message', (m) =>
    emit(id, 'message', { event: m.event, channel: m.channel ?? '', data: m.data ?? null }),
  );
  pusher.user.watchlist.bind('online', (e) => emit(id, 'watchlist', { name: 'online', user_ids: e.user_ids }));
  pusher.user.watchlist.bind('offline', (e) => emit(id, 'watchlist', { name: 'offline', user_ids: e.user_ids }));
  pusher.user.bind('pusher:signin_error', (e) => emit(id, 'signin_error', { error: JSON.stringify(e) }));
  pusher.user.bind_global((event, data) => {
    if (!event.startsWith('pusher:')) emit(id, 'user_event', { event, data });
  });
  const channels = cmd.subscribe || [];
  let pending = channels.length;
  for (const name of channels) {
    const channel = pusher.subscribe(name);
    bindChannel(id, client, name, channel);
    if (cmd.signin_after_subscribe) {
      // Signs in once every channel is in: subscriptions before sign-in.
      channel.bind('pusher:subscription_succeeded', () => {
        if (--pending === 0) pusher.signin();
      });
    }
  }
  if (cmd.signin && !cmd.signin_after_subscribe) pusher.signin();
}

function handle(cmd) {
  const client = clients.get(cmd.id);
  switch (cmd.op) {
    case 'connect':
      connect(cmd);
      break;
    case 'signin':
      client.pusher.signin();
      break;
    case 'subscribe':
      subscribe(cmd.id, client, cmd.channel);
      break;
    case 'unsubscribe':
      client.pusher.unsubscribe(cmd.channel);
      client.bound.delete(cmd.channel);
      break;
    case 'disconnect':
      client.pusher.disconnect();
      break;
    case 'state':
      emit(cmd.id, 'snapshot', {
        state: client.pusher.connection.state,
        counts: Object.fromEntries(Object.values(client.pusher.channels.channels).map((c) => [c.name, c.subscriptionCount ?? null])),
      });
      break;
    default:
      throw new Error(`unknown op ${cmd.op}`);
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
    handle(cmd);
    emit(cmd.id, 'ack', { op: cmd.op, seq: cmd.seq ?? 0 });
  } catch (e) {
    emit(cmd?.id ?? '', 'fatal', { error: `${cmd?.op}: ${e}` });
  }
});
lines.on('close', () => {
  for (const { pusher } of clients.values()) pusher.disconnect();
  process.exit(0);
});
emit('', 'ready', { version: Pusher.VERSION ?? null, node: process.version });
