import { createParamDecorator, ExecutionContext, UnsupportedMediaTypeException } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { INFERENCE_HEADER_CONTENT_LENGTH, splitBinaryBody } from './binary-tensor-data';

/** The route config (Nest's @RouteConfig) of the routes that take bodies with binary tensor data. */
export const BINARY_TENSOR_ROUTE = { binaryTensorData: true };

/** The media type such a body is parsed as, whatever type the client named: no client sends it itself. */
const BINARY_TENSOR_BODY = 'application/vnd.bales.binary-tensor-data';

/** The bytes after the JSON header, per request, until the handler takes them. */
const tensorBytes = new WeakMap<object, Buffer>();

const onBinaryTensorRoute = (request: Pick<FastifyRequest, 'routeOptions'>): boolean => (request.routeOptions.config as { binaryTensorData?: boolean } | undefined)?.binaryTensorData === true;

const takesBinaryTensors = (request: Pick<FastifyRequest, 'headers' | 'routeOptions'>): boolean => request.headers[INFERENCE_HEADER_CONTENT_LENGTH] !== undefined && onBinaryTensorRoute(request);

/**
 * Bodies with binary tensor data on the routes marked BINARY_TENSOR_ROUTE: the JSON header becomes the body,
 * validated as any JSON body is, and the bytes after it are the handler's through @BinaryTensorData(). A body
 * there without the header or a Content-Type is JSON. Every other request keeps its parsers (and its 415 for a type
 * that is not JSON). Within MAX_BODY_BYTES, as every body.
 */
export function useBinaryTensorBodies(app: NestFastifyApplication): void {
  // The header alone says how the body is framed: tritonclient sends application/octet-stream, or no type at all,
  // and no type for a request that is all JSON either.
  app
    .getHttpAdapter()
    .getInstance()
    .addHook('preParsing', (request, _reply, payload, done) => {
      if (takesBinaryTensors(request)) request.headers['content-type'] = BINARY_TENSOR_BODY;
      else if (request.headers['content-type'] === undefined && onBinaryTensorRoute(request)) request.headers['content-type'] = 'application/json';
      done(null, payload);
    });
  app.useBodyParser(BINARY_TENSOR_BODY, {}, (request, body, done) => {
    if (!takesBinaryTensors(request)) {
      done(new UnsupportedMediaTypeException());
      return;
    }
    let split;
    try {
      split = splitBinaryBody(body, request.headers[INFERENCE_HEADER_CONTENT_LENGTH]);
    } catch (err) {
      done(err as Error);
      return;
    }
    tensorBytes.set(request, split.tensors);
    done(null, split.header);
  });
}

/** The tensor bytes after the JSON header of a body with binary tensor data; undefined for a JSON body. */
export const BinaryTensorData = createParamDecorator((_: unknown, ctx: ExecutionContext): Buffer | undefined => tensorBytes.get(ctx.switchToHttp().getRequest<FastifyRequest>()));
