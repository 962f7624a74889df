// A TCP proxy in its own process, in front of one broker server's port: the fault suite freezes
// it with SIGSTOP to blackhole a network path (nothing answers, nothing closes: the kernel still
// accepts new connections into the backlog). Env: TARGET_PORT, LISTEN_PORT (0: any free port).
import { startBalancer } from '../../src/demo/balancer.js';

const target = Number(process.env.TARGET_PORT);
const balancer = await startBalancer([target], Number(process.env.LISTEN_PORT ?? 0));
console.log(JSON.stringify({ msg: 'proxy listening', port: balancer.port, target }));
process.on('SIGTERM', () => void balancer.close().then(() => process.exit(0)));
