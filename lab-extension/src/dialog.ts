/**
 * The "Publish as pipeline" form: team, name, profile, typed parameters, trigger and schedule
 * (with the service's words for it and its next runs), webhook, message, deploy now. Plain DOM
 * in a Lumino widget: `getValue()` is what JupyterLab's Dialog returns when the user accepts.
 *
 * On a deployed pipeline the run settings open as the deployment has them, and the form lists
 * what each change replaces (`deployment.ts`): a new version keeps what the person didn't change.
 */
import { Widget } from '@lumino/widgets';

import { Deployment, LabContext, ParameterSpec, PublishedTo, schedulePreview } from './api';
import { Chosen, DeployRequest, deploymentChanges, describeTrigger } from './deployment';

export interface FormValue {
  team: string;
  name: string;
  profile: string;
  /** The deployment request when "Deploy now" is ticked: only what changes on a deployed pipeline. */
  deploy: DeployRequest | null;
  message: string;
  problems: string[];
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** A pipeline name from a file name: lower-case letters, digits and '-'. */
export function nameFromPath(path: string): string {
  const base = path.split('/').pop() || 'notebook';
  const slug = base
    .replace(/\.ipynb$/, '')
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, 63);
  return slug || 'notebook';
}

function element<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Record<string, string> = {},
  text = ''
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    node.setAttribute(key, value);
  }
  if (text) {
    node.textContent = text;
  }
  return node;
}

function field(form: HTMLElement, label: string, control: HTMLElement, hint = ''): void {
  const row = element('label', { class: 'ah-publish-row' });
  row.appendChild(element('span', { class: 'ah-publish-label' }, label));
  row.appendChild(control);
  // Hints as tooltips: the whole form stays on one screen without scrolling.
  if (hint) {
    control.title = hint;
  }
  form.appendChild(row);
}

export class PublishForm extends Widget {
  private team: HTMLSelectElement;
  private name: HTMLInputElement;
  private profile: HTMLSelectElement;
  private trigger: HTMLSelectElement;
  private schedule: HTMLInputElement;
  private timezone: HTMLInputElement;
  private notifyUrl: HTMLInputElement;
  private preview: HTMLElement;
  private replaces: HTMLElement;
  private message: HTMLTextAreaElement;
  private deployNow: HTMLInputElement;
  private parameterInputs: [string, ParameterSpec, HTMLInputElement][] = [];
  private previewTimer = 0;

  constructor(
    private context: LabContext,
    path: string,
    serverProfile: string,
    published: PublishedTo | null
  ) {
    super();
    this.addClass('ah-publish-form');
    // Two columns, so the whole form fits the dialog without scrolling: what is published
    // (left), and how it runs (right).
    const form = element('div', { class: 'ah-publish-column' });
    const running = element('div', { class: 'ah-publish-column' });
    this.node.append(form, running);

    this.team = element('select', { name: 'team' });
    for (const team of context.teams) {
      this.team.appendChild(element('option', { value: team.name }, team.name));
    }
    if (published && context.teams.some(t => t.name === published.team)) {
      this.team.value = published.team;
    }
    field(form, 'Team', this.team, 'a hub group you are in: its members see and run the pipeline');
    if (!context.teams.length) {
      form.appendChild(element('p', { class: 'ah-publish-problem' }, 'You are in no team (hub group); ask an admin.'));
    }

    this.name = element('input', { name: 'name', type: 'text' });
    this.name.value = published ? published.name : nameFromPath(path);
    field(form, 'Pipeline name', this.name, "lower-case letters, digits and '-'");
    // What the run settings start from: the deployment of the pipeline named when the dialog opens.
    const deployed = this.deployment();

    this.profile = element('select', { name: 'profile' });
    field(form, 'Profile', this.profile, 'the image and resources each run gets');
    this.team.addEventListener('change', () => this.fillProfiles(serverProfile));
    this.fillProfiles(serverProfile);

    const parameters = element('fieldset', { class: 'ah-publish-parameters' });
    parameters.appendChild(element('legend', {}, 'Parameters (from the cell tagged "parameters")'));
    if (context.parameters) {
      for (const [name, spec] of Object.entries(context.parameters)) {
        parameters.appendChild(this.parameterRow(name, spec, deployed));
      }
      if (!Object.keys(context.parameters).length) {
        parameters.appendChild(element('p', {}, 'The parameters cell sets no values.'));
      }
    } else {
      parameters.appendChild(element('p', { class: 'ah-publish-problem' }, context.parameters_problem || ''));
    }
    running.appendChild(parameters);

    this.trigger = element('select', { name: 'trigger' });
    const triggers = [
      ['manual', 'Manual (Run now, the CLI)'],
      ['cron', 'On a schedule (cron)'],
      ['http', 'HTTP trigger (a token for other systems)']
    ];
    if (deployed?.trigger === 'after') {  // set on the page or the CLI; kept unless changed here
      triggers.push(['after', `After ${deployed.after_pipeline} (on ${deployed.after_on || 'success'})`]);
    }
    for (const [value, label] of triggers) {
      this.trigger.appendChild(element('option', { value }, label));
    }
    field(running, 'Trigger', this.trigger);
    this.schedule = element('input', { name: 'schedule', type: 'text', placeholder: '0 6 * * 1-5' });
    field(running, 'Schedule', this.schedule, 'minute hour day month weekday');
    this.timezone = element('input', { name: 'timezone', type: 'text' });
    this.timezone.value = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
    field(running, 'Time zone', this.timezone);
    this.preview = element('div', { class: 'ah-publish-preview', 'aria-live': 'polite' });
    running.appendChild(this.preview);
    this.notifyUrl = element('input', { name: 'notify_url', type: 'url', placeholder: 'https://… (optional)' });
    field(running, 'Webhook', this.notifyUrl, "each run's end is posted here");
    if (deployed) {
      this.trigger.value = deployed.trigger;
      this.schedule.value = deployed.schedule || '';
      this.timezone.value = deployed.timezone;
      this.notifyUrl.value = deployed.notify_url || '';
    }
    for (const control of [this.trigger, this.schedule, this.timezone]) {
      control.addEventListener('input', () => this.schedulePreviewSoon());
      control.addEventListener('change', () => this.schedulePreviewSoon());
    }
    this.showSchedule();

    this.message = element('textarea', { name: 'message', rows: '2' });
    field(form, 'Message', this.message, 'what changed, for the version history');

    this.deployNow = element('input', { name: 'deploy', type: 'checkbox' });
    this.deployNow.checked = true;
    field(form, 'Deploy now', this.deployNow, 'make this version the active one with this trigger');

    this.replaces = element('div', { class: 'ah-publish-replaces', 'aria-live': 'polite' });
    form.appendChild(this.replaces);
    // Every control may change what the deployment would lose: say it as it happens.
    this.node.addEventListener('input', () => this.showChanges());
    this.node.addEventListener('change', () => this.showChanges());
    this.showChanges();
  }

  /** The deployment of the pipeline the form names now (team and name), if it is deployed. */
  private deployment(): Deployment | null {
    const pipeline = this.context.pipelines.find(p => p.team === this.team.value && p.name === this.name.value);
    return pipeline?.deployment ?? null;
  }

  private declared(): Record<string, ParameterSpec> {
    return this.context.parameters || {};
  }

  private showChanges(): void {
    this.replaces.textContent = '';
    const current = this.deployment();
    if (!current || !this.deployNow.checked) {
      return;
    }
    const { replaces } = deploymentChanges(current, this.chosen([]), this.declared());
    this.replaces.appendChild(
      element(
        'p',
        {},
        replaces.length
          ? 'Deploying changes the deployment:'
          : `Keeps the deployment: ${describeTrigger(current)}, its parameters and webhook.`
      )
    );
    const list = element('ul');
    for (const sentence of replaces) {
      list.appendChild(element('li', {}, sentence));
    }
    this.replaces.appendChild(list);
  }

  private fillProfiles(serverProfile: string): void {
    const team = this.context.teams.find(t => t.name === this.team.value);
    this.profile.textContent = '';
    for (const profile of team ? team.profiles : []) {
      // As the spawn form says it: a profile whose runs can't get their GPU here is shown, not offered.
      const label = profile.unavailable ? `${profile.display_name} (${profile.unavailable})` : profile.display_name;
      const option = element('option', { value: profile.slug }, label);
      option.disabled = Boolean(profile.unavailable);
      this.profile.appendChild(option);
    }
    const usable = team ? team.profiles.filter(p => !p.unavailable) : [];
    if (usable.some(p => p.slug === serverProfile)) {
      this.profile.value = serverProfile;
    } else if (usable.length) {
      this.profile.value = usable[0].slug;
    }
  }

  private parameterRow(name: string, spec: ParameterSpec, deployed: Deployment | null): HTMLElement {
    const row = element('label', { class: 'ah-publish-row ah-publish-parameter' });
    row.appendChild(element('span', { class: 'ah-publish-label' }, name));
    // The deployment's value where it sets one (kept unless changed), else the notebook's.
    const value = deployed && name in deployed.parameters ? deployed.parameters[name] : spec.default;
    let input: HTMLInputElement;
    if (spec.type === 'bool') {
      input = element('input', { type: 'checkbox', 'data-parameter': name });
      input.checked = Boolean(value);
    } else if (spec.type === 'int' || spec.type === 'float') {
      input = element('input', { type: 'number', step: spec.type === 'int' ? '1' : 'any' });
      input.value = String(value);
    } else if (spec.type === 'str') {
      input = element('input', { type: 'text' });
      input.value = String(value);
    } else {
      input = element('input', { type: 'text' });
      input.value = JSON.stringify(value);
    }
    input.setAttribute('data-parameter', name);
    row.appendChild(input);
    row.appendChild(element('span', { class: 'ah-publish-type' }, spec.type));
    this.parameterInputs.push([name, spec, input]);
    return row;
  }

  private schedulePreviewSoon(): void {
    window.clearTimeout(this.previewTimer);
    this.previewTimer = window.setTimeout(() => this.showSchedule(), 300);
  }

  private async showSchedule(): Promise<void> {
    const cron = this.trigger.value === 'cron';
    this.schedule.disabled = !cron;
    this.timezone.disabled = !cron;
    if (!cron) {
      this.preview.textContent = '';
      return;
    }
    if (!this.schedule.value.trim()) {
      this.preview.textContent = 'Write a cron expression, e.g. 0 6 * * 1-5 for weekdays at 06:00.';
      return;
    }
    try {
      const preview = await schedulePreview(this.schedule.value.trim(), this.timezone.value.trim());
      this.preview.textContent = '';
      this.preview.appendChild(element('strong', {}, preview.description));
      const list = element('ul');
      for (const time of preview.next) {
        const at = new Date(time);
        list.appendChild(element('li', { title: time }, at.toLocaleString(undefined, {
          weekday: 'short', year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit',
          timeZone: this.timezone.value.trim() || 'UTC', timeZoneName: 'short'
        })));
      }
      this.preview.appendChild(element('span', {}, 'Next runs:'));
      this.preview.appendChild(list);
    } catch (error) {
      this.preview.textContent = (error as Error).message;
    }
  }

  getValue(): FormValue {
    const problems: string[] = [];
    if (!this.team.value) {
      problems.push('team: you are in no team');
    }
    if (!NAME_RE.test(this.name.value)) {
      problems.push(`name: ${JSON.stringify(this.name.value)} is not a valid name (lower-case letters, digits and '-')`);
    }
    const chosen = this.chosen(problems);
    return {
      team: this.team.value,
      name: this.name.value,
      profile: this.profile.value,
      deploy: this.deployNow.checked ? deploymentChanges(this.deployment(), chosen, this.declared()).request : null,
      message: this.message.value,
      problems
    };
  }

  /** The run settings as the form has them; what can't be read is added to `problems`. */
  private chosen(problems: string[]): Chosen {
    const parameters: Record<string, unknown> = {};
    for (const [name, spec, input] of this.parameterInputs) {
      let value: unknown;
      if (spec.type === 'bool') {
        value = input.checked;
      } else if (spec.type === 'int' || spec.type === 'float') {
        value = Number(input.value);
        if (input.value.trim() === '' || Number.isNaN(value) || (spec.type === 'int' && !Number.isInteger(value))) {
          problems.push(`${name}: ${JSON.stringify(input.value)} is not ${spec.type === 'int' ? 'an integer' : 'a number'}`);
        }
      } else if (spec.type === 'str') {
        value = input.value;
      } else {
        try {
          value = JSON.parse(input.value);
        } catch {
          problems.push(`${name}: ${JSON.stringify(input.value)} is not JSON`);
        }
      }
      // Only changed values become the deployment's parameters: the others follow the notebook.
      if (JSON.stringify(value) !== JSON.stringify(spec.default)) {
        parameters[name] = value;
      }
    }
    return {
      trigger: this.trigger.value,
      schedule: this.schedule.value.trim(),
      timezone: this.timezone.value.trim() || 'UTC',
      overrides: parameters,
      notifyUrl: this.notifyUrl.value.trim() || null
    };
  }
}
