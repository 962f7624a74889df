export * from './errors.js';
export * from './engineio.js';
export * from './ejson.js';
export * from './frames.js';
export * from './emitter-channel.js';
export * from './response-stream.js';
export * from './request-event.js';
export * from './token.js';
