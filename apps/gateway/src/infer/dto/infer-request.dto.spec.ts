import { plainToInstance } from 'class-transformer';
import { validateSync } from 'class-validator';
import { InferRequestDto } from './infer-request.dto';

const errorsOf = (body: object) =>
  validateSync(plainToInstance(InferRequestDto, body), { whitelist: true, forbidNonWhitelisted: true }).flatMap((e) => Object.values(e.constraints ?? {}));

describe('InferRequestDto', () => {
  it('accepts the original request', () => {
    expect(errorsOf({ model_id: 'stub_v1', model_type: 'classification', priority: 2, payload: { input: [0.1] } })).toEqual([]);
  });

  it('needs only a payload', () => {
    expect(errorsOf({ payload: { input: [] } })).toEqual([]);
    expect(errorsOf({})).toContain('payload is required');
  });

  it('names each field that is wrong', () => {
    const errors = errorsOf({ model_id: '../x', model_type: 'poem', priority: 0.5, payload: [], extra: true });
    expect(errors).toEqual(
      expect.arrayContaining([
        'model_id must be 1-128 letters, digits, _ . or -',
        'model_type must be one of classification, regression, embedding, raw',
        'priority must be an integer',
        'payload must be an object',
        'property extra should not exist',
      ]),
    );
  });
});
