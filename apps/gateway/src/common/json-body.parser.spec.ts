import { LiftedArray } from '@bales/model-registry';
import { BodyError, parseJson } from './json-body.parser';

const refusal = (text: string): string => {
  try {
    parseJson(Buffer.from(text));
  } catch (err) {
    expect(err).toBeInstanceOf(BodyError);
    return (err as BodyError).message;
  }
  throw new Error('parsed without an error');
};

const POISON = 'the request body must not hold a __proto__ key, nor a constructor key holding prototype';

describe('parseJson', () => {
  it('parses a plain body', () => {
    expect(parseJson(Buffer.from('{"payload":{"input":[[1.5,-2],[3,4e-3]]},"priority":1}'))).toEqual({ payload: { input: [[1.5, -2], [3, 0.004]] }, priority: 1 });
  });

  it.each([
    ['a __proto__ key', '{"a":1,"__proto__":{"x":1}}'],
    ['a constructor key holding prototype', '{"constructor":{"prototype":{"x":1}}}'],
    ['a __proto__ key spelt with \\u escapes', '{"\\u005f_proto__":{"x":1}}'],
    ['a constructor key spelt with \\u escapes', '{"\\u0063onstructor":{"prototype":{}}}'],
  ])('refuses %s, which would poison a prototype', (_, text) => {
    expect(refusal(text)).toBe(POISON);
  });

  it('still takes a constructor key that holds no prototype, and \\u escapes elsewhere', () => {
    expect(parseJson(Buffer.from('{"constructor":1,"name":"caf\\u00e9"}'))).toEqual({ constructor: 1, name: 'café' });
  });

  it('names what is wrong with text that is not JSON, and an empty body', () => {
    expect(refusal('{"payload":')).toMatch(/^the request body is not valid JSON: /);
    expect(refusal('')).toBe('the request body is empty; send a JSON object');
  });

  describe('a large body', () => {
    const values = Array.from({ length: 4000 }, (_, i) => Math.fround(Math.sin(i)));
    const text = JSON.stringify({ model_id: 'image', payload: { input: [values.slice(0, 2000), values.slice(2000)] } });

    it('comes back with its numeric arrays lifted into float32, and everything else as JSON.parse gives it', () => {
      const body = parseJson(Buffer.from(text)) as { model_id: string; payload: { input: LiftedArray } };
      expect(body.model_id).toBe('image');
      expect(body.payload.input).toBeInstanceOf(LiftedArray);
      expect(body.payload.input.dims).toEqual([2, 2000]);
      expect(Array.from(new Float32Array(body.payload.input.bytes('float32')!.buffer))).toEqual(values);
    });

    it('keeps a small body as JSON.parse gives it', () => {
      expect(parseJson(Buffer.from(JSON.stringify({ payload: { input: values.slice(0, 300) } })))).toEqual({ payload: { input: values.slice(0, 300) } });
    });

    it('names what is wrong in its own text, as JSON.parse of the whole body would', () => {
      for (const broken of [text.slice(0, -1), `${text.slice(0, -1)},}`, text.replace('"model_id"', 'model_id')]) {
        let expected = '';
        try {
          JSON.parse(broken);
        } catch (err) {
          expected = `the request body is not valid JSON: ${(err as Error).message}`.slice(0, 200);
        }
        expect(expected).not.toBe('');
        expect(refusal(broken)).toBe(expected);
      }
    });

    it('refuses a poisoning key in a large body too, and parses one with a harmless constructor key as JSON.parse does', () => {
      expect(refusal(text.replace('"model_id"', '"__proto__":{"x":1},"model_id"'))).toBe(POISON);
      // Left unlifted: secure-json-parse's scan would walk a lifted array's bytes one key at a time.
      const withConstructor = text.replace('"model_id"', '"constructor":1,"model_id"');
      expect(parseJson(Buffer.from(withConstructor))).toEqual(JSON.parse(withConstructor));
    });
  });
});
