import { loadConfig } from '@bales/config';
import { ErrorCode } from '@bales/errors';
import type { Fleet } from '@bales/fleet';
import { ModelState, type ModelRegistry, type RegisterRequest } from '@bales/model-registry';
import { BalesMetrics } from '@bales/observability';
import { FakeModelRegistry, STUB_SIGNATURE } from '../../../../test/support/fake-model-registry';
import { sample } from '../../../../test/support/observability';
import { rejection } from '../../../../test/support/rejection';
import { RegisterModelDto } from './dto/register-model.dto';
import { ModelsService } from './models.service';

const WIDE = {
  inputs: [{ name: 'input', type: 'float32', shape: ['batch', 256] }],
  outputs: [{ name: 'probabilities', type: 'float32', shape: ['batch', 10] }],
};

/** A fleet of this one replica: each call is carried out on the registry alone, and each model is held here at its version. */
function oneReplicaFleet(registry: FakeModelRegistry): Pick<Fleet, 'register' | 'reload' | 'unregister' | 'replicasOf'> {
  return {
    register: async (req: RegisterRequest) => ({ model: await registry.register(req), replicas: [{ replica_id: 'replica-a', load_ms: 0 }] }),
    reload: async (id: string, weightsPath: string | undefined, allowSignatureChange: boolean) => ({
      ...(await registry.reload(id, weightsPath, allowSignatureChange)),
      replicas: [],
    }),
    unregister: async (id: string) => ({ ...(await registry.unregister(id)), replicas: [] }),
    replicasOf: (id: string) => {
      const { version, state } = registry.get(id);
      return [{ replica_id: 'replica-a', version, state, held: [version] }];
    },
  };
}

function setup() {
  const registry = new FakeModelRegistry([{ id: 'stub_v1' }], { weights: { 'stub_v2.onnx': STUB_SIGNATURE, 'wide.onnx': WIDE } });
  const metrics = new BalesMetrics(loadConfig({ ENABLE_PROMETHEUS: 'false' }));
  const service = new ModelsService(registry as unknown as ModelRegistry, oneReplicaFleet(registry) as Fleet, metrics);
  const reloads = async (modelId: string, result: 'ok' | 'failed') => sample(await metrics.registry.metrics(), 'bales_model_reloads_total', { model_id: modelId, result });
  return { registry, service, reloads };
}

describe('ModelsService', () => {
  it('registers the model the body describes, with its task, labels and own max_batch_size', async () => {
    const { service, registry } = setup();
    const body: RegisterModelDto = { model_id: 'digits', weights_path: 'wide.onnx', task: 'classification', labels: ['zero', 'one'], max_batch_size: 4 };
    const info = await service.register(body);
    expect(info).toMatchObject({ id: 'digits', task: 'classification', labels: ['zero', 'one'], maxBatchSize: 4, signature: WIDE, replicas: [{ replica_id: 'replica-a' }] });
    expect(registry.has('digits')).toBe(true);
  });

  it('registers with the weights_path the body names: a missing file is FILE_NOT_FOUND', async () => {
    const { service } = setup();
    const err = await rejection(service.register({ model_id: 'digits', weights_path: 'nowhere.onnx', task: 'regression' }));
    expect([err.code, err.message]).toEqual([ErrorCode.FILE_NOT_FOUND, 'weights_path nowhere.onnx does not exist']);
  });

  it('counts a reload that succeeds as ok under the model id, and answers its outcome', async () => {
    const { service, reloads } = setup();
    const outcome = await service.reload('stub_v1', { weights_path: 'stub_v2.onnx' });
    expect(outcome).toMatchObject({ modelId: 'stub_v1', oldVersion: '1', newVersion: '2' });
    expect(await reloads('stub_v1', 'ok')).toBe(1);
    expect(await reloads('stub_v1', 'failed')).toBe(0);
  });

  it('refuses a signature change unless allow_signature_change is sent, counting the refusal as failed under the model id', async () => {
    const { service, reloads } = setup();
    const err = await rejection(service.reload('stub_v1', { weights_path: 'wide.onnx' }));
    expect(err.code).toBe(ErrorCode.MODEL_CONFLICT);
    expect(await reloads('stub_v1', 'failed')).toBe(1);
    await service.reload('stub_v1', { weights_path: 'wide.onnx', allow_signature_change: true });
    expect(await reloads('stub_v1', 'ok')).toBe(1);
  });

  it("counts a reload of an id the registry does not have as failed under 'unknown', so made-up ids add no series", async () => {
    const { service, reloads } = setup();
    const err = await rejection(service.reload('made_up', { weights_path: 'stub_v2.onnx' }));
    expect(err.code).toBe(ErrorCode.MODEL_NOT_FOUND);
    expect(await reloads('unknown', 'failed')).toBe(1);
    expect(await reloads('made_up', 'failed')).toBe(0);
  });

  it('lists and gets from this replica, with each replica\'s version and state, and unregisters through the fleet', async () => {
    const { service } = setup();
    expect(service.list().map((m) => m.id)).toEqual(['stub_v1']);
    expect(service.get('stub_v1')).toMatchObject({ version: '1', replicas: [{ replica_id: 'replica-a', version: '1', state: ModelState.READY }] });
    expect(await service.unregister('stub_v1')).toMatchObject({ modelId: 'stub_v1', version: '1', drainedRequests: 0 });
    expect(service.list()).toEqual([]);
  });
});
