/**
 * What publishing a new version does to a pipeline's deployment (issue 26): the deployment keeps
 * its trigger, schedule, time zone, parameters and webhook unless the dialog changes them, and
 * each change says what it replaces. Pure: the dialog's choices and the deployment in, the
 * request fields and the sentences out.
 */
import { Deployment, ParameterSpec } from './api';

/** What the dialog's run settings say; `overrides` are the parameters that differ from the notebook's. */
export interface Chosen {
  trigger: string;
  schedule: string;
  timezone: string;
  overrides: Record<string, unknown>;
  notifyUrl: string | null;
}

export interface DeployRequest {
  trigger?: string;
  schedule?: string | null;
  timezone?: string;
  parameters?: Record<string, unknown>;
  notify_url?: string | null;
}

export interface Changes {
  /** The deployment request: every field for a pipeline not deployed, else only what changes. */
  request: DeployRequest;
  /** One sentence per change to a deployment: "Trigger: replaces cron 0 6 * * 1-5 Europe/Paris". */
  replaces: string[];
}

/** A trigger as the pipeline page writes it: "cron 0 6 * * 1-5 Europe/Paris", "manual", … */
export function describeTrigger(d: Pick<Deployment, 'trigger' | 'schedule' | 'timezone' | 'after_pipeline' | 'after_on'>): string {
  if (d.trigger === 'cron') {
    return `cron ${d.schedule} ${d.timezone}`;
  }
  if (d.trigger === 'after') {
    return `after ${d.after_pipeline} (on ${d.after_on || 'success'})`;
  }
  if (d.trigger === 'http') {
    return 'HTTP trigger';
  }
  return d.trigger;
}

const same = (a: unknown, b: unknown): boolean => JSON.stringify(a) === JSON.stringify(b);

export function deploymentChanges(
  current: Deployment | null,
  chosen: Chosen,
  declared: Record<string, ParameterSpec>
): Changes {
  const cron = chosen.trigger === 'cron';
  if (!current) {
    return {
      request: {
        trigger: chosen.trigger,
        timezone: chosen.timezone,
        parameters: chosen.overrides,
        ...(cron ? { schedule: chosen.schedule } : {}),
        ...(chosen.notifyUrl ? { notify_url: chosen.notifyUrl } : {})
      },
      replaces: []
    };
  }
  const request: DeployRequest = {};
  const replaces: string[] = [];
  const triggerChanged =
    chosen.trigger !== current.trigger ||
    (cron && (chosen.schedule !== (current.schedule || '') || chosen.timezone !== current.timezone));
  if (triggerChanged) {
    request.trigger = chosen.trigger;
    request.timezone = chosen.timezone;
    request.schedule = cron ? chosen.schedule : null;
    replaces.push(`Trigger: replaces ${describeTrigger(current)}`);
  }

  // The deployment's overrides apply to the parameters the new notebook still sets; a value
  // left at the notebook's default follows the notebook, as before.
  let parametersChanged = false;
  for (const [name, spec] of Object.entries(declared)) {
    const before = name in current.parameters ? current.parameters[name] : spec.default;
    const after = name in chosen.overrides ? chosen.overrides[name] : spec.default;
    if (!same(before, after)) {
      parametersChanged = true;
      const was = name in current.parameters ? JSON.stringify(before) : `the notebook's ${JSON.stringify(before)}`;
      replaces.push(`Parameter ${name}: replaces ${was}`);
    }
  }
  for (const [name, value] of Object.entries(current.parameters)) {
    if (!(name in declared)) {
      parametersChanged = true;
      replaces.push(`Parameter ${name}: ${JSON.stringify(value)} is dropped (this notebook does not set ${name})`);
    }
  }
  if (parametersChanged) {
    request.parameters = chosen.overrides;
  }

  if ((chosen.notifyUrl || null) !== (current.notify_url || null)) {
    request.notify_url = chosen.notifyUrl || null;
    replaces.push(`Webhook: replaces ${current.notify_url || 'none'}`);
  }
  return { request, replaces };
}
