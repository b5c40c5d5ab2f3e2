import { DynamicModule, Global, Module } from '@nestjs/common';
import { BalesConfig } from './bales-config';

@Global()
@Module({})
export class ConfigModule {
  /** Provides the configuration, validated once at boot by loadConfig(), to the whole app. */
  static forRoot(config: BalesConfig): DynamicModule {
    return { module: ConfigModule, providers: [{ provide: BalesConfig, useValue: config }], exports: [BalesConfig] };
  }
}
