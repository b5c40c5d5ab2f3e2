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
});
