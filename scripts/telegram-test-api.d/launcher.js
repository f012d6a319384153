#!/usr/bin/env node
// Runs the npm package telegram-test-api (a fake Telegram Bot API) for
// Passerelle's tests. The npm tarball ships no command-line entry point, so
// this file is it. Usually started through scripts/telegram-test-api.
//
// Usage: node launcher.js --port <port> [--host 127.0.0.1] [--raw]
//                         [--store-timeout <seconds>] [--exit-with-parent]
//
//   --host              where to listen; default 127.0.0.1. The package's own
//                       default, `localhost`, may resolve to ::1.
//   --raw               serve the package's behaviour unchanged (apart from
//                       not crashing, see below). Without it, a thin
//                       compatibility layer fixes the answers typed Bot API
//                       clients cannot decode, and makes getUpdates honour
//                       offset/limit/timeout: see docs/fakes/telegram-test-api.md.
//   --store-timeout     seconds the package keeps messages before its clean-up
//                       timer drops them (package default 60, ours 86400).
//   --exit-with-parent  exit when the process that started this one is gone.
//
// Environment: PASSERELLE_TELEGRAM_TEST_API_PREFIX, the npm prefix the package
// is installed in (default: .local/telegram-test-api in the repository);
// PASSERELLE_TELEGRAM_TEST_API_DEBUG=1 logs every request (the package's
// `debug` output, on stderr).
'use strict';

const assert = require('assert');
const fs = require('fs');
const path = require('path');

const PINNED_VERSION = '4.2.1';

function fail(message, code = 1) {
  process.stderr.write(`[telegram-test-api] error: ${message}\n`);
  process.exit(code);
}

function parseArgs(argv) {
  const opts = {
    host: '127.0.0.1', port: null, raw: false, storeTimeout: 86400, exitWithParent: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) fail(`${arg} needs a value`, 2);
      i += 1;
      return argv[i];
    };
    if (arg === '--port') opts.port = Number(value());
    else if (arg === '--host') opts.host = value();
    else if (arg === '--store-timeout') opts.storeTimeout = Number(value());
    else if (arg === '--raw') opts.raw = true;
    else if (arg === '--exit-with-parent') opts.exitWithParent = true;
    else fail(`unknown argument: ${arg}`, 2);
  }
  if (!Number.isInteger(opts.port) || opts.port <= 0 || opts.port > 65535) {
    fail('--port <1-65535> is required', 2);
  }
  // The package runs its clean-up with setInterval(storeTimeout * 1000):
  // Node turns delays above 2^31-1 ms into 1 ms, which would empty the
  // storage continuously.
  if (!(opts.storeTimeout > 0 && opts.storeTimeout * 1000 < 2 ** 31)) {
    fail('--store-timeout must be between 1 and 2147483 seconds', 2);
  }
  return opts;
}

function loadPackage() {
  const prefix = process.env.PASSERELLE_TELEGRAM_TEST_API_PREFIX
    || path.join(__dirname, '..', '..', '.local', 'telegram-test-api');
  const dir = path.join(prefix, 'node_modules', 'telegram-test-api');
  let version;
  try {
    // eslint-disable-next-line global-require, import/no-dynamic-require
    ({ version } = require(path.join(dir, 'package.json')));
  } catch (e) {
    fail(`telegram-test-api is not installed in ${prefix}: run scripts/telegram-test-api install`, 3);
  }
  if (version !== PINNED_VERSION) {
    fail(`${dir} is version ${version}, not ${PINNED_VERSION}: run scripts/telegram-test-api install`, 3);
  }
  // eslint-disable-next-line global-require, import/no-dynamic-require
  return require(dir);
}

// --- compatibility layer (not with --raw) ---------------------------------

const BOT_PATH = /^\/bot([^/]+)\/([^/?]+)/;

function botUser(token) {
  const id = Number(String(token).split(':')[0]);
  return {
    id: Number.isSafeInteger(id) && id > 0 ? id : 666,
    is_bot: true,
    first_name: 'Test First name',
    username: 'TestNameBot',
  };
}

// Telegram's conventions: users and private chats > 0, basic groups < 0,
// supergroups and channels <= -10^12 (-100…).
function chatOf(chatId) {
  const id = Number(chatId);
  if (!Number.isFinite(id)) return { id: null, type: 'private' };
  if (id > 0) return { id, type: 'private', first_name: 'Test Name' };
  if (id <= -1e12) return { id, type: 'supergroup', title: `Chat ${id}` };
  return { id, type: 'group', title: `Chat ${id}` };
}

function parseMaybeJson(value) {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch (e) {
    return value;
  }
}

function sameChat(a, b) {
  return a !== undefined && a !== null && String(a) === String(b);
}

function findBotMessage(server, token, chatId, messageId) {
  return server.storage.botMessages.find((u) => u.botToken === token
    && sameChat(u.message.chat_id, chatId) && String(u.messageId) === String(messageId));
}

function findUserMessage(server, token, chatId, messageId) {
  return server.storage.userMessages.find((u) => u.botToken === token && u.message
    && u.message.chat && sameChat(u.message.chat.id, chatId)
    && String(u.messageId) === String(messageId));
}

// A Message object, as the real API returns it, for a stored bot message.
function botMessageObject(server, token, stored, depth = 0) {
  const m = stored.message;
  const out = {
    message_id: stored.messageId,
    from: botUser(token),
    chat: chatOf(m.chat_id),
    date: Math.floor(stored.time / 1000),
  };
  if (m.message_thread_id !== undefined) out.message_thread_id = Number(m.message_thread_id);
  const replyTo = m.reply_parameters !== undefined
    ? (parseMaybeJson(m.reply_parameters) || {}).message_id : m.reply_to_message_id;
  if (replyTo !== undefined && depth === 0) {
    const bot = findBotMessage(server, token, m.chat_id, replyTo);
    const user = bot ? null : findUserMessage(server, token, m.chat_id, replyTo);
    if (bot) {
      out.reply_to_message = botMessageObject(server, token, bot, depth + 1);
    } else if (user) {
      // As the bot received it, minus the package's own field.
      const { botToken, ...rest } = user.message;
      out.reply_to_message = { ...rest, message_id: user.messageId };
    }
  }
  if (m.text !== undefined) out.text = String(m.text);
  if (m.entities !== undefined) out.entities = parseMaybeJson(m.entities);
  const markup = parseMaybeJson(m.reply_markup);
  if (markup && typeof markup === 'object' && 'inline_keyboard' in markup) out.reply_markup = markup;
  if (stored.editTime !== undefined) out.edit_date = Math.floor(stored.editTime / 1000);
  return out;
}

function sendError(res, code, description) {
  res.status(code).json({ ok: false, error_code: code, description });
}

// Per bot token: updates with an update_id below this were confirmed by an
// offset and are never delivered again (as in the real API).
const confirmedBelow = new Map();

function pendingUpdates(server, token) {
  const floor = confirmedBelow.get(token) || 0;
  return server.storage.userMessages
    .filter((u) => u.botToken === token && u.updateId >= floor)
    .sort((a, b) => a.updateId - b.updateId);
}

// Makes the package's getUpdates route return exactly the pending updates.
function markPending(server, token) {
  const floor = confirmedBelow.get(token) || 0;
  for (const u of server.storage.userMessages) {
    if (u.botToken === token) u.isRead = u.updateId < floor;
  }
}

function confirm(server, token, offset) {
  const floor = confirmedBelow.get(token) || 0;
  if (offset > 0) {
    confirmedBelow.set(token, Math.max(floor, offset));
  } else if (offset < 0) {
    const pending = pendingUpdates(server, token);
    if (pending.length > -offset) {
      confirmedBelow.set(token, pending[pending.length + offset].updateId);
    }
  }
}

// The package's next update_id is server.updateId.
function confirmAll(server, token) {
  confirmedBelow.set(token, server.updateId);
}

// Resolves with false when the client went away meanwhile.
function waitForUserUpdate(server, res, seconds) {
  return new Promise((resolve) => {
    const events = ['AddedUserMessage', 'AddedUserCommand', 'AddedUserCallbackQuery'];
    let timer = null;
    const finish = (open) => () => {
      clearTimeout(timer);
      events.forEach((e) => server.off(e, onUpdate));
      res.off('close', onClose);
      resolve(open);
    };
    const onUpdate = finish(true);
    const onClose = finish(false);
    timer = setTimeout(onUpdate, seconds * 1000);
    events.forEach((e) => server.on(e, onUpdate));
    res.on('close', onClose);
  });
}

// The user update the current client request made: the package assigns its
// ids synchronously inside the route (TelegramServer#getCommonFields).
let lastUserUpdate = null;

// Client routes /sendMessage, /sendCommand, /sendCallback: answer with the
// update the bot gets (the package answers `result: null`), or with an error
// when the package rejected the request (it would answer ok).
function clientCompat(server) {
  return (req, res, next) => {
    if (req.method !== 'POST' || !['/sendMessage', '/sendCommand', '/sendCallback'].includes(req.path)) {
      next();
      return;
    }
    const json = res.json.bind(res);
    lastUserUpdate = null;
    res.json = (body) => {
      if (body && body.ok === true && body.result === null) {
        if (lastUserUpdate === null) {
          return json.call(res.status(400), {
            ok: false,
            error_code: 400,
            description: req.path === '/sendCommand' && req.body && req.body.botToken
              ? 'a command needs `entities`' : 'the message needs a `botToken` field',
          });
        }
        return json({ ok: true, result: server.constructor.formatUpdate(lastUserUpdate) });
      }
      return json(body);
    };
    next();
  };
}

// Webhook delivery as Telegram does it: one update at a time per bot, in
// order, with the secret_token header, retried a few times on failure; never
// an unhandled rejection, and the package's id counters move on at once.
function installWebhookDelivery(server) {
  const queues = new Map();
  const deliver = async (token, webhook, update) => {
    const headers = { 'content-type': 'application/json' };
    if (webhook.secret_token) headers['x-telegram-bot-api-secret-token'] = String(webhook.secret_token);
    for (let attempt = 1; attempt <= 5; attempt++) {
      try {
        // eslint-disable-next-line no-await-in-loop
        const resp = await fetch(webhook.url, { method: 'POST', headers, body: JSON.stringify(update) });
        if (resp.ok) return;
        process.stderr.write(`[telegram-test-api] webhook ${webhook.url}: HTTP ${resp.status} (attempt ${attempt})\n`);
      } catch (e) {
        process.stderr.write(`[telegram-test-api] webhook ${webhook.url}: ${e.cause || e} (attempt ${attempt})\n`);
      }
      // eslint-disable-next-line no-await-in-loop
      await new Promise((r) => { setTimeout(r, 200 * attempt); });
    }
    process.stderr.write(`[telegram-test-api] webhook ${webhook.url}: update ${update.update_id} dropped\n`);
  };
  // Replaces TelegramServer#addUserUpdate (lib/telegramServer.js).
  // eslint-disable-next-line no-param-reassign
  server.addUserUpdate = async function addUserUpdate(update) {
    assert.ok(update.botToken, 'The message must be of type object and must contain `botToken` field.');
    lastUserUpdate = update;
    const webhook = this.webhooks[update.botToken];
    if (webhook) {
      const body = this.constructor.formatUpdate(update);
      const previous = queues.get(update.botToken) || Promise.resolve();
      queues.set(update.botToken, previous.then(() => deliver(update.botToken, webhook, body)));
    } else {
      this.storage.userMessages.push(update);
    }
    this.updateId++;
  };
}

function installCompat(server) {
  const app = server.webServer;
  installWebhookDelivery(server);

  const compat = (req, res, next) => {
    const match = BOT_PATH.exec(req.path);
    if (!match) {
      next();
      return;
    }
    const token = decodeURIComponent(match[1]);
    const method = match[2];
    // The real API takes parameters from the query string as well.
    req.body = { ...req.query, ...(req.body || {}) };
    const params = req.body;

    // Rewrites what the package answers into the Bot API's shapes.
    const json = res.json.bind(res);
    let shaping = null;
    res.json = (body) => {
      if (body && body.ok === undefined && typeof body.message === 'string') {
        // res.sendError(): HTTP 500 {"message": …}.
        if (body.message.startsWith('API method ')) {
          return json.call(res.status(404), { ok: false, error_code: 404, description: `Not Found: ${body.message.split('.')[0]}` });
        }
        return json.call(res.status(res.statusCode || 500), { ok: false, error_code: res.statusCode || 500, description: body.message });
      }
      if (body && body.ok === false && body.error_code) {
        return json.call(res.status(body.error_code), body);
      }
      if (body && body.ok === true && shaping) {
        return json({ ...body, result: shaping(body.result) });
      }
      return json(body);
    };

    switch (method) {
      case 'getMe':
        shaping = () => botUser(token);
        break;
      case 'getUpdates': {
        if (server.webhooks[token]) {
          sendError(res, 409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first");
          return;
        }
        const offset = Number(params.offset || 0);
        const limit = Math.min(Math.max(Number(params.limit || 100), 1), 100);
        const timeout = Math.min(Math.max(Number(params.timeout || 0), 0), 50);
        if (Number.isFinite(offset)) confirm(server, token, offset);
        shaping = (result) => {
          // The package marked what it returned as read: an update stays
          // pending until an offset confirms it.
          markPending(server, token);
          return result.slice(0, limit);
        };
        const go = () => {
          markPending(server, token);
          next();
        };
        const deadline = Date.now() + timeout * 1000;
        // Updates for other bots wake the wait too: wait again then.
        const poll = () => {
          const left = deadline - Date.now();
          if (left <= 0 || pendingUpdates(server, token).length > 0) {
            go();
            return;
          }
          waitForUserUpdate(server, res, left / 1000).then((open) => {
            if (open && !res.headersSent) poll();
          });
        };
        poll();
        return;
      }
      case 'sendMessage':
        if (params.chat_id === undefined || params.chat_id === '') {
          sendError(res, 400, 'Bad Request: chat_id is empty');
          return;
        }
        if (params.text === undefined || String(params.text).trim() === '') {
          sendError(res, 400, 'Bad Request: message text is empty');
          return;
        }
        shaping = (result) => {
          const stored = findBotMessage(server, token, params.chat_id, result.message_id);
          return stored ? botMessageObject(server, token, stored) : result;
        };
        break;
      case 'editMessageText':
      case 'editMessageReplyMarkup': {
        if (params.inline_message_id !== undefined) {
          sendError(res, 400, 'Bad Request: MESSAGE_ID_INVALID');
          return;
        }
        const stored = findBotMessage(server, token, params.chat_id, params.message_id);
        if (!stored) {
          sendError(res, 400, 'Bad Request: message to edit not found');
          return;
        }
        const key = (m) => JSON.stringify([
          method === 'editMessageText' ? String(m.text) : '',
          method === 'editMessageText' ? parseMaybeJson(m.entities) || null : null,
          method === 'editMessageText' ? m.parse_mode || null : null,
          parseMaybeJson(m.reply_markup) || null,
        ]);
        if (key(stored.message) === key({ ...stored.message, ...params })) {
          sendError(res, 400, 'Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message');
          return;
        }
        shaping = () => {
          stored.editTime = Date.now();
          return botMessageObject(server, token, stored);
        };
        break;
      }
      case 'deleteMessage':
      case 'answerCallbackQuery':
        shaping = (result) => (result === null ? true : result);
        break;
      case 'setWebhook':
        if (String(params.drop_pending_updates) === 'true') confirmAll(server, token);
        if (!params.url) {
          // An empty url removes the webhook.
          server.deleteWebhook(token);
          res.json({ ok: true, result: true, description: 'Webhook was deleted' });
          return;
        }
        shaping = () => true;
        break;
      case 'deleteWebhook':
        if (String(params.drop_pending_updates) === 'true') confirmAll(server, token);
        break;
      case 'getWebhookInfo': {
        const webhook = server.webhooks[token];
        res.json({
          ok: true,
          result: {
            url: webhook ? String(webhook.url) : '',
            has_custom_certificate: false,
            pending_update_count: webhook ? 0 : pendingUpdates(server, token).length,
          },
        });
        return;
      }
      case 'getChat': {
        // The package has no chats; the chat's kind follows from its id as
        // in the Bot API (-100… supergroups and channels, other negatives
        // basic groups, positives users).
        const id = Number(params.chat_id);
        if (!Number.isFinite(id)) {
          sendError(res, 400, 'Bad Request: chat not found');
          return;
        }
        let type = 'group';
        if (id > 0) type = 'private';
        else if (String(id).startsWith('-100')) type = 'supergroup';
        const result = { id, type, accent_color_id: 0, max_reaction_count: 11 };
        if (type === 'private') result.first_name = `User ${id}`;
        else result.title = `Chat ${id}`;
        res.json({ ok: true, result });
        return;
      }
      default:
        break;
    }
    next();
  };

  // Both run after the package's body parsers and before its routes.
  app.use(compat);
  app.use(clientCompat(server));
  const stack = app._router.stack; // eslint-disable-line no-underscore-dangle
  const layers = stack.splice(stack.length - 2, 2);
  const at = stack.findIndex((l) => l.name === 'requestLogger');
  assert.ok(at >= 0, 'telegram-test-api: requestLogger middleware not found');
  stack.splice(at + 1, 0, ...layers);
}

// --- main -------------------------------------------------------------------

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (process.env.PASSERELLE_TELEGRAM_TEST_API_DEBUG) {
    process.env.DEBUG = `${process.env.DEBUG ? `${process.env.DEBUG},` : ''}TelegramServer:*`;
  }
  const TelegramServer = loadPackage();

  // The package's client routes call async functions without awaiting them
  // (lib/routes/client/*.js): a failed assertion or webhook call would be an
  // unhandled rejection, which ends a Node >= 15 process. Log it instead.
  process.on('unhandledRejection', (reason) => {
    process.stderr.write(`[telegram-test-api] unhandled rejection (request ignored): ${reason && reason.stack ? reason.stack : reason}\n`);
  });

  const server = new TelegramServer({ host: opts.host, port: opts.port, storeTimeout: opts.storeTimeout });
  if (!opts.raw) installCompat(server);
  try {
    await server.start();
  } catch (e) {
    fail(`cannot listen on ${opts.host}:${opts.port}: ${e.code === 'EADDRINUSE' ? 'Address already in use' : e.message}`);
  }
  const address = server.server.address();
  if (!address || address.address !== opts.host) {
    fail(`listening on ${JSON.stringify(address)}, not ${opts.host}`);
  }

  let stopping = false;
  const stop = async (why) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`[telegram-test-api] stopping (${why})\n`);
    setTimeout(() => process.exit(0), 2000).unref();
    await server.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (opts.exitWithParent) {
    // process.ppid is read once at start-up: ask the kernel instead.
    const parent = process.ppid;
    const parentNow = () => {
      try {
        const stat = fs.readFileSync('/proc/self/stat', 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      } catch (e) {
        try {
          process.kill(parent, 0);
          return parent;
        } catch (e2) {
          return null;
        }
      }
    };
    setInterval(() => {
      if (parentNow() !== parent) stop(`parent ${parent} exited`);
    }, 500).unref();
  }
  process.stdout.write(`[telegram-test-api] ${PINNED_VERSION} listening on http://${address.address}:${address.port}${opts.raw ? ' (raw)' : ''} (pid ${process.pid})\n`);
}

main();
