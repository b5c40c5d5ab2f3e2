#!/usr/bin/env node
// `npm start`: makes sure a Redis answers at REDIS_URL, then runs the built gateway.
// With no Redis and a local `redis-server` installed, it starts a throwaway one and says so.
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { existsSync } = require('node:fs');
const { createConnection } = require('node:net');
const { join } = require('node:path');

if (existsSync('.env')) process.loadEnvFile('.env');
const redisUrl = process.env.REDIS_URL || 'redis://localhost:6379/0';
// Printed with its credentials masked, as the gateway logs it.
const shownUrl = redisUrl.replace(/\/\/[^@]*@/, '//***@');

function answers(host, port) {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    socket.setTimeout(1000);
    socket.on('connect', () => socket.write('PING\r\n'));
    // A RESP reply counts, even -NOAUTH: something that speaks Redis is there.
    socket.on('data', (d) => resolve(d[0] === 0x2b || d[0] === 0x2d) || socket.destroy());
    socket.on('error', () => resolve(false));
    socket.on('timeout', () => resolve(false) || socket.destroy());
  });
}

async function ensureRedis() {
  let url;
  try {
    url = new URL(redisUrl);
  } catch {
    return; // the gateway's own config check names the bad value
  }
  if (url.protocol !== 'redis:') return;
  const host = url.hostname.replace(/^\[|\]$/g, '') || 'localhost';
  const port = Number(url.port || 6379);
  if (await answers(host, port)) return;
  const local = ['localhost', '127.0.0.1', '::1'].includes(host);
  const installed = spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;
  if (!local || !installed) {
    console.error(`BALES: no Redis answers at REDIS_URL=${shownUrl}. Start one (redis-server --save "" --appendonly no, or docker compose up redis) or point REDIS_URL at yours.`);
    process.exit(1);
  }
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  process.on('exit', () => redis.kill());
  for (let i = 0; i < 50 && !(await answers('127.0.0.1', port)); i++) await new Promise((r) => setTimeout(r, 100));
  console.log(`BALES: no Redis answered at ${shownUrl}, so started a throwaway redis-server on 127.0.0.1:${port} (pid ${redis.pid}, nothing saved); it stops with the gateway.`);
}

ensureRedis().then(() => require(join(__dirname, '..', 'dist', 'apps', 'gateway', 'src', 'main.js')));
