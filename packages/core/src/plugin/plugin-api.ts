import type { DependencyContainer } from 'tsyringe';
import { tapOnlyView, type Hooks } from '../hooks/hooks';
import { Tokens } from '../services/tokens';
import type { PluginApi, ServiceRegistry, TrainerView } from './types';

/** The services registry a plugin sees: this trainer's own container, with `decorate`. */
export function serviceRegistry(container: DependencyContainer): ServiceRegistry {
  return {
    container,
    register: (token, value) => void container.register(token, { useValue: value }),
    decorate: (token, wrap) => {
      const previous = container.resolve(token);
      container.register(token, { useValue: wrap(previous) });
    },
    resolve: (token) => container.resolve(token),
  };
}

/** What `plugin.apply` receives: hooks tapped in the plugin's name, services, a read-only trainer view. */
export function createPluginApi(plugin: string, hooks: Hooks, container: DependencyContainer, trainer: TrainerView): PluginApi {
  return { hooks: tapOnlyView(hooks, plugin), services: serviceRegistry(container), trainer, logger: container.resolve(Tokens.Logger) };
}
