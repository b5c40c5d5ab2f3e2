import { ArgumentMetadata, BadRequestException, Injectable, SetMetadata, ValidationError, ValidationPipe } from '@nestjs/common';
import { validate } from 'class-validator';

const FLAT_DTO = Symbol('flat-dto');

/**
 * Marks a DTO whose fields are all primitives or opaque objects (no nested DTO to instantiate), so its body
 * is validated on a shallow copy instead of through class-transformer, which deep-copies (and the pipe
 * walks) every element of a large tensor payload on the hot path.
 */
export const FlatDto = (): ClassDecorator => SetMetadata(FLAT_DTO, true);

/** One message naming every field that failed, e.g. "priority must be an integer; payload is required". */
function messages(errors: ValidationError[], parent = ''): string[] {
  return errors.flatMap((e) => {
    const path = parent ? `${parent}.${e.property}` : e.property;
    const own = Object.values(e.constraints ?? {}).map((m) => (m.startsWith(e.property) ? `${parent ? parent + '.' : ''}${m}` : `${path}: ${m}`));
    return [...own, ...messages(e.children ?? [], path)];
  });
}

/** class-validator on every DTO: unknown fields refused, every failing field named, and a body must be a JSON object. */
@Injectable()
export class BodyValidationPipe extends ValidationPipe {
  constructor() {
    super({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      exceptionFactory: (errors) => new BadRequestException(messages(errors).join('; ')),
    });
  }

  override async transform(value: unknown, metadata: ArgumentMetadata) {
    if (metadata.type === 'body' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
      throw new BadRequestException('the request body must be a JSON object');
    }
    const type = metadata.metatype as (new () => object) | undefined;
    if (metadata.type === 'body' && type && Reflect.getMetadata(FLAT_DTO, type)) {
      // Fastify's JSON parser already refuses __proto__ and constructor.prototype keys, so a shallow copy is safe.
      const dto = Object.assign(new type(), value);
      const errors = await validate(dto, { whitelist: true, forbidNonWhitelisted: true });
      if (errors.length > 0) throw new BadRequestException(messages(errors).join('; '));
      return dto;
    }
    return super.transform(value, metadata);
  }
}
