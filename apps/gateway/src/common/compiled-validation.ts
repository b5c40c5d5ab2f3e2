import { ValidationArguments, ValidationTypes, getMetadataStorage } from 'class-validator';

/** True when class-validator would find nothing wrong with the instance; false when it might (ask it why). */
export type Acceptor = (dto: object) => boolean;

interface PropertyChecks {
  name: string;
  /** @IsOptional and @ValidateIf: the property is checked only when every one holds. */
  conditions: ((object: object, value: unknown) => boolean)[];
  checks: { constraints: unknown[]; validateIf?: (object: object, value: unknown) => boolean; validate: (value: unknown, args: ValidationArguments) => unknown }[];
}

const SUPPORTED = new Set<string>([ValidationTypes.CUSTOM_VALIDATION, ValidationTypes.IS_DEFINED, ValidationTypes.CONDITIONAL_VALIDATION]);

/**
 * Compiles a flat DTO's class-validator decorators into one function that says whether an instance is valid,
 * calling the same constraint implementations class-validator would, with the same arguments, but without
 * building its metadata lists and error objects per call. It only answers yes or "ask class-validator", so
 * class-validator stays the one source of the rules and of every error message. Returns undefined when the
 * DTO uses anything it does not reproduce (groups, `each`, nested or async validation), so the caller keeps
 * using class-validator for it. Unknown properties are refused, as with whitelist + forbidNonWhitelisted.
 */
export function compileAcceptor(type: new () => object): Acceptor | undefined {
  const storage = getMetadataStorage();
  const metadatas = storage.getTargetValidationMetadatas(type, '', false, false);
  const properties = new Map<string, PropertyChecks>();
  for (const m of metadatas) {
    if (!SUPPORTED.has(m.type) || m.each || m.groups?.length || m.always) return undefined;
    const property = properties.get(m.propertyName) ?? { name: m.propertyName, conditions: [], checks: [] };
    properties.set(m.propertyName, property);
    if (m.type === ValidationTypes.CONDITIONAL_VALIDATION) {
      property.conditions.push(m.constraints[0] as (object: object, value: unknown) => boolean);
      continue;
    }
    for (const constraint of storage.getTargetValidatorConstraints(m.constraintCls)) {
      if (constraint.async) return undefined;
      const instance = constraint.instance as { validate: PropertyChecks['checks'][number]['validate'] };
      property.checks.push({ constraints: m.constraints, validateIf: m.validateIf, validate: instance.validate.bind(instance) });
    }
  }
  const list = [...properties.values()];
  const targetName = type.name;
  return (dto) => {
    for (const key of Object.keys(dto)) if (!properties.has(key)) return false;
    for (const p of list) {
      const value = (dto as Record<string, unknown>)[p.name];
      if (p.conditions.some((holds) => !holds(dto, value))) continue;
      for (const c of p.checks) {
        if (c.validateIf && !c.validateIf(dto, value)) continue;
        if (!c.validate(value, { targetName, property: p.name, object: dto, value, constraints: c.constraints })) return false;
      }
    }
    return true;
  };
}
