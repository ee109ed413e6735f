/**
 * Calls to this server's analysis_hub_lab extension, which forwards them to the hub's
 * pipelines service with the server's own hub token (the user never handles a token).
 */
import { PageConfig, URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface ParameterSpec {
  type: string;
  default: unknown;
}

/** What a deployed pipeline runs on: what a new version keeps unless the dialog changes it. */
export interface Deployment {
  trigger: string;
  schedule: string | null;
  timezone: string;
  parameters: Record<string, unknown>;
  notify_url: string | null;
  after_pipeline: string | null;
  after_on: string | null;
}

export interface LabProfile {
  slug: string;
  display_name: string;
  /** Why a run of it can't get what it needs here ('' when it can), as the spawn form says it. */
  unavailable: string;
}

export interface LabPipeline {
  team: string;
  name: string;
  active_version: number | null;
  latest_version: number | null;
  deployment: Deployment | null;
}

export interface LabContext {
  user: string;
  teams: { name: string; profiles: LabProfile[] }[];
  pipelines: LabPipeline[];
  parameters: Record<string, ParameterSpec> | null;
  parameters_problem: string | null;
}

export interface ServerConfig {
  profile: string;
  service: boolean;
}

export interface SchedulePreview {
  description: string;
  next: string[];
}

export interface PublishRequest {
  path: string;
  team: string;
  name: string;
  profile: string;
  message: string;
  /** Only what changes: the service keeps every field of the deployment left out. */
  deploy: {
    trigger?: string;
    schedule?: string | null;
    timezone?: string;
    parameters?: Record<string, unknown>;
    notify_url?: string | null;
  } | null;
}

export interface PublishResult {
  version: { number: number; profile: string };
  pipeline: { active_version: number | null } | null;
}

/** Where the notebook records the pipeline it was published to. */
export interface PublishedTo {
  team: string;
  name: string;
  version: number;
}

export class ApiError extends Error {}

async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'analysis-hub', path);
  const response = await ServerConnection.makeRequest(url, init, settings);
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new ApiError(data.message || `${response.status} ${response.statusText}`);
  }
  return data as T;
}

export function serverConfig(): Promise<ServerConfig> {
  return request<ServerConfig>('config');
}

export function labContext(notebook: unknown): Promise<LabContext> {
  return request<LabContext>('pipelines/api/lab/context', {
    method: 'POST',
    body: JSON.stringify({ notebook })
  });
}

export function schedulePreview(cron: string, timezone: string): Promise<SchedulePreview> {
  const query = new URLSearchParams({ cron, timezone }).toString();
  return request<SchedulePreview>(`pipelines/api/lab/schedule?${query}`);
}

/** The pipeline's deploy state alone (not its versions and runs): what the toolbar polls. */
export function pipelineSummary(team: string, name: string): Promise<{ active_version: number | null }> {
  const path = `pipelines/api/pipelines/${encodeURIComponent(team)}/${encodeURIComponent(name)}/deployment`;
  return request(path);
}

export function publish(body: PublishRequest): Promise<PublishResult> {
  return request<PublishResult>('publish', { method: 'POST', body: JSON.stringify(body) });
}

/** The pipeline's page on the hub (the service's pages are beside the hub, not in this server). */
export function pipelinePage(team: string, name: string): string {
  const hubPrefix = PageConfig.getOption('hubPrefix') || '/hub/';
  const root = hubPrefix.replace(/hub\/?$/, '');
  return `${root}services/pipelines/p/${encodeURIComponent(team)}/${encodeURIComponent(name)}`;
}
