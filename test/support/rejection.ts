import { BalesError } from '@bales/errors';

/** The BalesError a call fails with, thrown or rejected; fails the test when the call succeeds or fails otherwise. */
export async function rejection(call: Promise<unknown> | (() => unknown)): Promise<BalesError> {
  const err = await Promise.resolve()
    .then(() => (typeof call === 'function' ? call() : call))
    .then(
      () => {
        throw new Error('expected the call to fail');
      },
      (e: unknown) => e,
    );
  expect(err).toBeInstanceOf(BalesError);
  return err as BalesError;
}
